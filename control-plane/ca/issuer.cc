#include "control-plane/ca/issuer.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/objects.h>
#include <openssl/rand.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/strings.h"
#include "data-plane/tls/certs.h"
#include "data-plane/tls/openssl_util.h"

namespace weft::ca {

using namespace tls::internal;  // NOLINT: the shared OpenSSL helpers

struct Issuer::Keys {
  X509Ptr certificate;  // the signing certificate
  KeyPtr key;
};

namespace {

absl::Status OpenSslFailure(std::string_view what) {
  std::string e = TakeErrors();
  return absl::InternalError(absl::StrCat(Sv(what), e.empty() ? "" : ": ", e));
}

bool SegmentOk(std::string_view s) {
  if (s.empty() || s == "." || s == "..") return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
  });
}

// The digest that goes with the signing key: SHA-384 for P-384, SHA-256 otherwise.
const EVP_MD* DigestFor(EVP_PKEY* key) {
  return KeyDescription(key) == "secp384r1" ? EVP_sha384() : EVP_sha256();
}

absl::Status AddExtension(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  Ptr<X509_EXTENSION> ext(X509V3_EXT_nconf_nid(nullptr, ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return OpenSslFailure(absl::StrCat("extension ", OBJ_nid2sn(nid), "=", value));
  }
  return absl::OkStatus();
}

// A positive 127-bit random serial: unique without a counter to keep in the store.
absl::Status SetRandomSerial(X509* cert, std::string* hex) {
  Ptr<BIGNUM> bn(BN_new());
  if (!bn || BN_rand(bn.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ODD) != 1 ||
      BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    return OpenSslFailure("serial number");
  }
  if (hex != nullptr) {
    char* h = BN_bn2hex(bn.get());
    *hex = h;
    OPENSSL_free(h);
  }
  return absl::OkStatus();
}

absl::Status SetValidity(X509* cert, WallTime not_before, WallTime not_after) {
  if (ASN1_TIME_set(X509_getm_notBefore(cert), ToUnix(not_before)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert), ToUnix(not_after)) == nullptr) {
    return OpenSslFailure("validity");
  }
  return absl::OkStatus();
}

// A CA certificate for `key`, signed by `signer` (itself when null).
absl::StatusOr<X509Ptr> MakeCaCertificate(EVP_PKEY* key, const CaSpec& spec, WallTime now,
                                          WallTime not_after, X509* signer, EVP_PKEY* signer_key) {
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) return OpenSslFailure("X509_new");
  if (auto s = SetRandomSerial(cert.get(), nullptr); !s.ok()) return s;
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(spec.trust_domain.c_str()), -1,
                             -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(spec.common_name.c_str()), -1,
                             -1, 0);
  X509_set_issuer_name(cert.get(), signer != nullptr ? X509_get_subject_name(signer)
                                                     : X509_get_subject_name(cert.get()));
  // Back-dated like workload certificates, for peers whose clocks run behind.
  if (auto s = SetValidity(cert.get(), now - Seconds(300), not_after); !s.ok()) return s;
  if (X509_set_pubkey(cert.get(), key) != 1) return OpenSslFailure("public key");
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, signer != nullptr ? signer : cert.get(), cert.get(), nullptr, nullptr, 0);
  std::pair<int, std::string> exts[] = {
      {NID_basic_constraints,
       signer != nullptr ? "critical,CA:TRUE,pathlen:0" : "critical,CA:TRUE"},
      {NID_key_usage, "critical,keyCertSign,cRLSign"},
      {NID_subject_key_identifier, "hash"},
      {NID_authority_key_identifier, "keyid:always"},
      {NID_subject_alt_name, absl::StrCat("URI:spiffe://", spec.trust_domain)},
  };
  for (const auto& [nid, value] : exts) {
    if (auto s = AddExtension(cert.get(), &ctx, nid, value); !s.ok()) return s;
  }
  if (X509_sign(cert.get(), signer_key != nullptr ? signer_key : key,
                DigestFor(signer_key != nullptr ? signer_key : key)) == 0) {
    return OpenSslFailure("signing the CA certificate");
  }
  return cert;
}

absl::Status CheckTrustDomain(std::string_view td) {
  if (td.empty() || td.size() > 255 || !std::all_of(td.begin(), td.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
      })) {
    return absl::InvalidArgumentError(
        absl::StrCat("trust domain \"", Sv(td),
                     "\" must be lower-case letters, digits, '.', '-' or '_' (SPIFFE)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> SpiffeId(std::string_view trust_domain, std::string_view ns,
                                     std::string_view service_account) {
  if (auto s = CheckTrustDomain(trust_domain); !s.ok()) return s;
  if (!SegmentOk(ns)) {
    return absl::InvalidArgumentError(
        absl::StrCat("namespace \"", Sv(ns), "\" must be letters, digits, '.', '-' or '_'"));
  }
  if (!SegmentOk(service_account)) {
    return absl::InvalidArgumentError(absl::StrCat("service account \"", Sv(service_account),
                                                   "\" must be letters, digits, '.', '-' or '_'"));
  }
  return absl::StrCat("spiffe://", Sv(trust_domain), "/ns/", Sv(ns), "/sa/", Sv(service_account));
}

Issuer::Issuer(const Clock& clock, std::unique_ptr<Keys> keys)
    : clock_(clock), keys_(std::move(keys)) {}
Issuer::~Issuer() = default;

absl::StatusOr<std::unique_ptr<Issuer>> Issuer::GenerateRoot(const CaSpec& spec,
                                                             const Clock& clock) {
  if (auto s = CheckTrustDomain(spec.trust_domain); !s.ok()) return s;
  auto keys = std::make_unique<Keys>();
  keys->key = NewP256Key();
  if (!keys->key) return OpenSslFailure("generating the root key");
  WallTime now = clock.WallNow();
  auto cert = MakeCaCertificate(keys->key.get(), spec, now, now + spec.ttl, nullptr, nullptr);
  if (!cert.ok()) return cert.status();
  keys->certificate = *std::move(cert);
  std::unique_ptr<Issuer> issuer(new Issuer(clock, std::move(keys)));
  issuer->certificate_pem_ = CertificatePem(issuer->keys_->certificate.get());
  issuer->chain_pem_ = issuer->certificate_pem_;
  issuer->bundle_pem_ = issuer->certificate_pem_;
  issuer->key_pem_ = PrivateKeyPem(issuer->keys_->key.get());
  issuer->not_after_ = ToTimePoint(X509_get0_notAfter(issuer->keys_->certificate.get()));
  issuer->self_signed_ = true;
  return issuer;
}

absl::StatusOr<std::unique_ptr<Issuer>> Issuer::NewIntermediate(const Issuer& parent,
                                                                const CaSpec& spec,
                                                                const Clock& clock) {
  if (auto s = CheckTrustDomain(spec.trust_domain); !s.ok()) return s;
  KeyPtr key = NewP256Key();
  if (!key) return OpenSslFailure("generating the intermediate key");
  WallTime now = clock.WallNow();
  auto cert = MakeCaCertificate(key.get(), spec, now, std::min(now + spec.ttl, parent.not_after()),
                                parent.keys_->certificate.get(), parent.keys_->key.get());
  if (!cert.ok()) return cert.status();
  std::string chain = CertificatePem(cert->get());
  // The parent's own intermediates, if any, follow (its chain minus its first certificate).
  std::vector<X509Ptr> parent_chain = ReadCertificates(parent.chain_pem());
  if (!parent.self_signed()) {
    for (const X509Ptr& x : parent_chain) chain += CertificatePem(x.get());
  }
  return Load(chain, PrivateKeyPem(key.get()), parent.trust_bundle_pem(), clock);
}

absl::StatusOr<std::unique_ptr<Issuer>> Issuer::Load(std::string_view chain_pem,
                                                     std::string_view key_pem,
                                                     std::string_view bundle_pem,
                                                     const Clock& clock) {
  ERR_clear_error();
  std::vector<X509Ptr> chain = ReadCertificates(chain_pem);
  if (chain.empty()) return absl::InvalidArgumentError("CA certificate: no PEM certificate found");
  Ptr<BIO> kb = MemBio(key_pem);
  KeyPtr key(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
  if (!key) {
    return absl::InvalidArgumentError(
        absl::StrCat("CA key: not an unencrypted PEM private key (", TakeErrors(), ")"));
  }
  X509* cert = chain[0].get();
  if (X509_check_private_key(cert, key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("CA key does not match the CA certificate");
  }
  if (X509_check_ca(cert) < 1) {
    return absl::InvalidArgumentError("CA certificate is not a CA (basicConstraints CA:TRUE)");
  }
  if ((X509_get_extension_flags(cert) & EXFLAG_KUSAGE) &&
      !(X509_get_key_usage(cert) & KU_KEY_CERT_SIGN)) {
    return absl::InvalidArgumentError("CA certificate's keyUsage does not allow keyCertSign");
  }
  std::string kd = KeyDescription(key.get());
  if (kd != "prime256v1" && kd != "secp384r1" &&
      !(kd.rfind("RSA-", 0) == 0 && EVP_PKEY_get_bits(key.get()) >= 2048)) {
    return absl::InvalidArgumentError(
        absl::StrCat("CA key ", kd, " is not allowed (ECDSA P-256 or P-384, RSA >= 2048)"));
  }
  WallTime now = clock.WallNow();
  int64_t t = ToUnix(now);
  WallTime not_after = WallTime::max();
  for (const X509Ptr& x : chain) {
    not_after = std::min(not_after, ToTimePoint(X509_get0_notAfter(x.get())));
  }
  if (X509_cmp_time(X509_get0_notBefore(cert), &t) > 0 || now >= not_after) {
    return absl::FailedPreconditionError("CA certificate (or its chain) is not valid now");
  }

  bool self_signed = (X509_get_extension_flags(cert) & EXFLAG_SS) != 0;
  std::string bundle(bundle_pem);
  if (bundle.empty()) {
    if (!self_signed) {
      return absl::InvalidArgumentError(
          "the CA certificate is not self-signed: give the root(s) it chains to as the trust "
          "bundle");
    }
    bundle = CertificatePem(cert);
  }
  if (absl::Status v = tls::VerifyChain(chain_pem, bundle, now); !v.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("CA certificate does not verify against the trust bundle: ", v.message()));
  }

  auto keys = std::make_unique<Keys>();
  keys->certificate = std::move(chain[0]);
  keys->key = std::move(key);
  std::unique_ptr<Issuer> issuer(new Issuer(clock, std::move(keys)));
  issuer->certificate_pem_ = CertificatePem(issuer->keys_->certificate.get());
  issuer->chain_pem_ = issuer->certificate_pem_;
  for (size_t i = 1; i < chain.size(); ++i) issuer->chain_pem_ += CertificatePem(chain[i].get());
  issuer->key_pem_ = PrivateKeyPem(issuer->keys_->key.get());
  issuer->bundle_pem_ = std::move(bundle);
  issuer->not_after_ = not_after;
  issuer->self_signed_ = self_signed;
  return issuer;
}

absl::StatusOr<IssuedCertificate> Issuer::SignCsr(std::string_view csr_pem,
                                                  const LeafSpec& spec) const {
  ERR_clear_error();
  if (spec.spiffe_id.rfind("spiffe://", 0) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("\"", spec.spiffe_id, "\" is not a SPIFFE ID"));
  }
  if (spec.ttl <= Seconds(0)) return absl::InvalidArgumentError("lifetime must be positive");
  Ptr<BIO> bio = MemBio(csr_pem);
  Ptr<X509_REQ> req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (!req) {
    ERR_clear_error();
    return absl::InvalidArgumentError("CSR: not a PEM certificate request");
  }
  EVP_PKEY* pub = X509_REQ_get0_pubkey(req.get());
  if (pub == nullptr || X509_REQ_verify(req.get(), pub) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        "CSR: its signature does not verify (it must be signed by the key it carries)");
  }
  if (std::string kd = KeyDescription(pub); kd != "prime256v1") {
    return absl::InvalidArgumentError(
        absl::StrCat("CSR: key is ", kd, "; workload keys must be ECDSA P-256"));
  }

  // What the CSR asks for must be exactly what the caller was granted, or less.
  std::vector<std::string> refused;
  Ptr<STACK_OF(X509_EXTENSION)> exts(X509_REQ_get_extensions(req.get()));
  for (int i = 0; exts && i < sk_X509_EXTENSION_num(exts.get()); ++i) {
    X509_EXTENSION* ext = sk_X509_EXTENSION_value(exts.get(), i);
    int nid = OBJ_obj2nid(X509_EXTENSION_get_object(ext));
    if (nid != NID_subject_alt_name) {
      refused.push_back(absl::StrCat("extension ", nid == NID_undef ? "unknown" : OBJ_nid2sn(nid),
                                     " (the CA decides extensions)"));
      continue;
    }
    Ptr<GENERAL_NAMES> names(static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(ext)));
    for (int j = 0; names && j < sk_GENERAL_NAME_num(names.get()); ++j) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(names.get(), j);
      if (n->type == GEN_URI) {
        std::string uri(reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.ia5)),
                        ASN1_STRING_length(n->d.ia5));
        if (uri != spec.spiffe_id) refused.push_back(absl::StrCat("identity ", uri));
      } else if (n->type == GEN_DNS) {
        std::string dns(reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.ia5)),
                        ASN1_STRING_length(n->d.ia5));
        if (std::find(spec.dns_names.begin(), spec.dns_names.end(), dns) == spec.dns_names.end()) {
          refused.push_back(absl::StrCat("DNS name ", dns));
        }
      } else {
        refused.push_back("a subject alternative name other than URI or DNS");
      }
    }
  }
  if (!refused.empty()) {
    return absl::PermissionDeniedError(
        absl::StrCat("CSR asks for ", absl::StrJoin(refused, ", "), "; granted: ", spec.spiffe_id));
  }

  X509Ptr cert(X509_new());
  IssuedCertificate out;
  if (!cert || X509_set_version(cert.get(), 2) != 1) return OpenSslFailure("X509_new");
  if (auto s = SetRandomSerial(cert.get(), &out.serial_hex); !s.ok()) return s;
  X509* signer = keys_->certificate.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  // Empty subject, identity in the (then critical) SAN: SPIFFE X509-SVID.
  WallTime now = clock_.WallNow();
  out.not_before = now - spec.backdate;
  out.not_after = std::min(now + spec.ttl, not_after_);
  if (out.not_after <= now) {
    return absl::FailedPreconditionError("the CA certificate has expired; rotate the CA");
  }
  // Whole seconds, as X.509 stores them, so what we report is what the certificate says.
  out.not_before = std::chrono::time_point_cast<Seconds>(out.not_before);
  out.not_after = std::chrono::time_point_cast<Seconds>(out.not_after);
  if (auto s = SetValidity(cert.get(), out.not_before, out.not_after); !s.ok()) return s;
  if (X509_set_pubkey(cert.get(), pub) != 1) return OpenSslFailure("public key");
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, signer, cert.get(), nullptr, nullptr, 0);
  std::string san = absl::StrCat("critical,URI:", spec.spiffe_id);
  for (const std::string& d : spec.dns_names) absl::StrAppend(&san, ",DNS:", d);
  std::pair<int, std::string> ext_values[] = {
      {NID_basic_constraints, "critical,CA:FALSE"},   {NID_key_usage, "critical,digitalSignature"},
      {NID_ext_key_usage, "serverAuth,clientAuth"},   {NID_subject_key_identifier, "hash"},
      {NID_authority_key_identifier, "keyid:always"}, {NID_subject_alt_name, san},
  };
  for (const auto& [nid, value] : ext_values) {
    if (auto s = AddExtension(cert.get(), &ctx, nid, value); !s.ok()) return s;
  }
  if (X509_sign(cert.get(), keys_->key.get(), DigestFor(keys_->key.get())) == 0) {
    return OpenSslFailure("signing the certificate");
  }
  out.certificate_pem = CertificatePem(cert.get());
  // The chain a workload serves: its leaf, then every CA certificate below the root.
  out.chain_pem = out.certificate_pem;
  if (!self_signed_) out.chain_pem += chain_pem_;
  return out;
}

}  // namespace weft::ca
