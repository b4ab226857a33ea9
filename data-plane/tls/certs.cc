#include "data-plane/tls/certs.h"

#include <arpa/inet.h>
#include <openssl/bn.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "common/xds/tls_check.h"
#include "data-plane/tls/openssl_util.h"

namespace weft::tls {

using namespace internal;  // NOLINT: this folder's OpenSSL helpers

namespace {

using envoy::extensions::transport_sockets::tls::v3::Secret;

std::string NameText(const X509_NAME* name) {
  Ptr<BIO> bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
  return BioText(bio.get());
}

std::string Ia5(const ASN1_IA5STRING* s) {
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
}

// Characters that would change the meaning of OpenSSL's "URI:a,DNS:b" extension syntax.
bool PlainSanValue(std::string_view v) {
  return !v.empty() && std::none_of(v.begin(), v.end(), [](char c) {
    return c == ',' || c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\0';
  });
}

size_t CountCertificateBlocks(std::string_view pem) {
  size_t n = 0;
  for (size_t p = pem.find("-----BEGIN CERTIFICATE-----"); p != std::string_view::npos;
       p = pem.find("-----BEGIN CERTIFICATE-----", p + 1)) {
    ++n;
  }
  return n;
}

std::string_view InlineText(const envoy::config::core::v3::DataSource& ds) {
  if (ds.has_inline_string()) return ds.inline_string();
  return ds.inline_bytes();
}

bool AllowedKey(EVP_PKEY* key, std::string* description) {
  *description = KeyDescription(key);
  if (*description == "prime256v1" || *description == "secp384r1") return true;
  return EVP_PKEY_is_a(key, "RSA") && EVP_PKEY_get_bits(key) >= 2048;
}

}  // namespace

CertificateInfo internal::DescribeCertificate(X509* x) {
  CertificateInfo info;
  info.subject = NameText(X509_get_subject_name(x));
  info.issuer = NameText(X509_get_issuer_name(x));
  info.not_before = ToTimePoint(X509_get0_notBefore(x));
  info.not_after = ToTimePoint(X509_get0_notAfter(x));
  info.is_ca = X509_check_ca(x) >= 1;
  if (EVP_PKEY* key = X509_get0_pubkey(x)) info.key_type = KeyDescription(key);
  if (Ptr<BIGNUM> bn{ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), nullptr)}) {
    char* h = BN_bn2hex(bn.get());
    info.serial_hex = h;
    OPENSSL_free(h);
  }
  Ptr<GENERAL_NAMES> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr)));
  int spiffe = 0;
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names.get(), i);
    if (n->type == GEN_URI) {
      info.uri_sans.push_back(Ia5(n->d.uniformResourceIdentifier));
      if (info.uri_sans.back().rfind("spiffe://", 0) == 0) {
        ++spiffe;
        info.spiffe_id = info.uri_sans.back();
      }
    } else if (n->type == GEN_DNS) {
      info.dns_sans.push_back(Ia5(n->d.dNSName));
    }
  }
  // SPIFFE: an X509-SVID carries exactly one URI SAN; several make the identity ambiguous.
  if (spiffe != 1 || info.uri_sans.size() != 1) info.spiffe_id.clear();
  ERR_clear_error();
  return info;
}

absl::StatusOr<std::string> GenerateKey() {
  KeyPtr key = NewP256Key();
  if (!key) return absl::InternalError(absl::StrCat("generating a key: ", TakeErrors()));
  return PrivateKeyPem(key.get());
}

absl::StatusOr<std::string> MakeCsr(std::string_view key_pem, std::string_view spiffe_id,
                                    const std::vector<std::string>& dns_names) {
  ERR_clear_error();
  Ptr<BIO> kb = MemBio(key_pem);
  KeyPtr key(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
  if (!key) {
    ERR_clear_error();
    return absl::InvalidArgumentError("CSR: not an unencrypted PEM private key");
  }
  if (!PlainSanValue(spiffe_id)) {
    return absl::InvalidArgumentError(absl::StrCat("CSR: bad identity \"", Sv(spiffe_id), "\""));
  }
  std::string san = absl::StrCat("URI:", Sv(spiffe_id));
  for (const std::string& d : dns_names) {
    if (!PlainSanValue(d))
      return absl::InvalidArgumentError(absl::StrCat("CSR: bad DNS \"", d, "\""));
    absl::StrAppend(&san, ",DNS:", d);
  }
  Ptr<X509_REQ> req(X509_REQ_new());
  if (!req || X509_REQ_set_version(req.get(), 0) != 1 ||
      X509_REQ_set_pubkey(req.get(), key.get()) != 1) {
    return absl::InternalError(absl::StrCat("CSR: ", TakeErrors()));
  }
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, nullptr, nullptr, req.get(), nullptr, 0);
  Ptr<STACK_OF(X509_EXTENSION)> exts(sk_X509_EXTENSION_new_null());
  X509_EXTENSION* ext = X509V3_EXT_nconf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str());
  if (ext == nullptr) return absl::InternalError(absl::StrCat("CSR: SAN: ", TakeErrors()));
  sk_X509_EXTENSION_push(exts.get(), ext);
  if (X509_REQ_add_extensions(req.get(), exts.get()) != 1 ||
      X509_REQ_sign(req.get(), key.get(), EVP_sha256()) == 0) {
    return absl::InternalError(absl::StrCat("CSR: signing: ", TakeErrors()));
  }
  Ptr<BIO> out(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(out.get(), req.get());
  return BioText(out.get());
}

absl::StatusOr<std::vector<CertificateInfo>> InspectCertificates(std::string_view pem) {
  std::vector<X509Ptr> certs = ReadCertificates(pem);
  size_t blocks = CountCertificateBlocks(pem);
  if (certs.empty()) return absl::InvalidArgumentError("no PEM certificate found");
  if (certs.size() != blocks) {
    return absl::InvalidArgumentError(
        absl::StrCat("certificate ", certs.size(), " of ", blocks, " does not parse"));
  }
  std::vector<CertificateInfo> out;
  for (const X509Ptr& x : certs) out.push_back(DescribeCertificate(x.get()));
  return out;
}

absl::Status VerifyChain(std::string_view chain_pem, std::string_view bundle_pem, WallTime at) {
  ERR_clear_error();
  std::vector<X509Ptr> chain = ReadCertificates(chain_pem);
  if (chain.empty()) return absl::InvalidArgumentError("chain: no PEM certificate found");
  std::vector<X509Ptr> roots = ReadCertificates(bundle_pem);
  if (roots.empty()) return absl::InvalidArgumentError("trust bundle: no PEM certificate found");
  Ptr<X509_STORE> store(X509_STORE_new());
  for (const X509Ptr& r : roots) X509_STORE_add_cert(store.get(), r.get());
  Ptr<STACK_OF(X509)> untrusted(sk_X509_new_null());
  for (size_t i = 1; i < chain.size(); ++i) {
    X509_up_ref(chain[i].get());
    sk_X509_push(untrusted.get(), chain[i].get());
  }
  Ptr<X509_STORE_CTX> ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), chain[0].get(), untrusted.get());
  X509_STORE_CTX_set_time(ctx.get(), 0, static_cast<time_t>(ToUnix(at)));
  if (X509_verify_cert(ctx.get()) == 1) return absl::OkStatus();
  int err = X509_STORE_CTX_get_error(ctx.get());
  int depth = X509_STORE_CTX_get_error_depth(ctx.get());
  std::string who;
  if (X509* bad = X509_STORE_CTX_get_current_cert(ctx.get())) {
    CertificateInfo info = DescribeCertificate(bad);
    who = absl::StrCat(", ", info.spiffe_id.empty() ? info.subject : info.spiffe_id);
  }
  ERR_clear_error();
  return absl::InvalidArgumentError(
      absl::StrCat(X509_verify_cert_error_string(err), " (certificate ", depth, who, ")"));
}

absl::StatusOr<bool> KeyMatchesCertificate(std::string_view key_pem, std::string_view chain_pem) {
  std::vector<X509Ptr> chain = ReadCertificates(chain_pem);
  if (chain.empty()) return absl::InvalidArgumentError("no PEM certificate found");
  Ptr<BIO> kb = MemBio(key_pem);
  KeyPtr key(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
  if (!key) {
    ERR_clear_error();
    return absl::InvalidArgumentError("not an unencrypted PEM private key");
  }
  bool match = X509_check_private_key(chain[0].get(), key.get()) == 1;
  ERR_clear_error();
  return match;
}

void CheckSecretMaterial(const Secret& secret, ValidationErrors* errors) {
  ERR_clear_error();
  if (secret.has_tls_certificate()) {
    ValidationErrors::Scope s(errors, "tls_certificate");
    const auto& tc = secret.tls_certificate();
    std::string_view chain_pem = InlineText(tc.certificate_chain());
    std::vector<X509Ptr> chain = ReadCertificates(chain_pem);
    size_t blocks = CountCertificateBlocks(chain_pem);
    if (chain.size() != blocks) {
      errors->AddAt("certificate_chain", absl::StrCat("certificate ", chain.size(),
                                                      " is not a valid X.509 certificate"));
      return;
    }
    Ptr<BIO> kb = MemBio(InlineText(tc.private_key()));
    KeyPtr key(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
    if (!key) {
      errors->AddAt("private_key", absl::StrCat("is not a valid private key (", TakeErrors(), ")"));
      return;
    }
    std::string kd;
    if (!AllowedKey(key.get(), &kd)) {
      errors->AddAt("private_key",
                    absl::StrCat("is ", kd, "; allowed: ECDSA P-256 or P-384, RSA >= 2048"));
    }
    if (X509_check_private_key(chain[0].get(), key.get()) != 1) {
      errors->AddAt("private_key", "does not match the first certificate of certificate_chain");
    }
    if (X509_check_ca(chain[0].get()) >= 1) {
      errors->AddAt("certificate_chain",
                    "the first certificate is a CA certificate; a server or client certificate "
                    "goes first");
    }
  } else if (secret.has_validation_context()) {
    ValidationErrors::Scope s(errors, "validation_context");
    std::string_view pem = InlineText(secret.validation_context().trusted_ca());
    std::vector<X509Ptr> roots = ReadCertificates(pem);
    size_t blocks = CountCertificateBlocks(pem);
    if (roots.size() != blocks) {
      errors->AddAt("trusted_ca", absl::StrCat("certificate ", roots.size(),
                                               " is not a valid X.509 certificate"));
    }
  }
  ERR_clear_error();
}

void InstallSecretChecks() { xds::InstallSecretMaterialCheck(&CheckSecretMaterial); }

}  // namespace weft::tls
