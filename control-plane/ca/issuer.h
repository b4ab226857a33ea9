// X.509 issuing for weft-cp's CA: a signing certificate and key (a generated root, or an
// operator's root or intermediate) that turns certificate signing requests into SPIFFE workload
// certificates (X509-SVIDs). No storage and no RPC here: ca.h keeps an Issuer in the store and
// decides who may ask for which identity.
//
// What a workload certificate holds is decided here, never copied from the request: the CSR
// only proves possession of the key and names the identity it wants, which must be the one the
// caller was granted. ECDSA P-256 keys only; an empty subject with a critical URI SAN (SPIFFE
// X509-SVID); CA:FALSE; digitalSignature; serverAuth and clientAuth; NotBefore back-dated for
// clock skew; NotAfter never beyond the signing certificate's.
//
// OpenSSL stays inside issuer.cc (only this folder and data-plane/tls include it).
// Thread safety: an Issuer is immutable after creation; SignCsr may run on many threads.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"

namespace weft::ca {

using Seconds = std::chrono::seconds;
using WallTime = std::chrono::system_clock::time_point;

// What a workload certificate certifies. `spiffe_id` is required; `dns_names` are for serving
// certificates (weft-cp's own, later) and must be asked for in the CSR as well.
struct LeafSpec {
  std::string spiffe_id;
  std::vector<std::string> dns_names;
  Seconds ttl{24 * 3600};
  // NotBefore = now - backdate: a peer whose clock runs a little behind still accepts it.
  Seconds backdate{5 * 60};
};

struct IssuedCertificate {
  std::string certificate_pem;  // the leaf alone
  std::string chain_pem;        // leaf, then the intermediates up to (not including) the root
  WallTime not_before;
  WallTime not_after;
  std::string serial_hex;
};

struct CaSpec {
  std::string trust_domain = "weft";
  // The lesson of istio#14516 (a one-year root that expired in production): ten years.
  Seconds ttl{10LL * 365 * 24 * 3600};
  std::string common_name = "Weft Root CA";
};

class Issuer {
 public:
  // A new self-signed root with a fresh ECDSA P-256 key.
  static absl::StatusOr<std::unique_ptr<Issuer>> GenerateRoot(const CaSpec& spec,
                                                              const Clock& clock);
  // A new intermediate CA signed by `parent` (an operator's PKI in tests; CA rotation later).
  static absl::StatusOr<std::unique_ptr<Issuer>> NewIntermediate(const Issuer& parent,
                                                                 const CaSpec& spec,
                                                                 const Clock& clock);
  // An existing CA: `chain_pem` is the signing certificate followed by any intermediates above
  // it, `key_pem` its private key, `bundle_pem` the root(s) it chains to (empty when the signing
  // certificate is itself a self-signed root). Checked: the key matches, the certificate is a CA
  // allowed to sign certificates, it is valid now and it verifies against the bundle.
  static absl::StatusOr<std::unique_ptr<Issuer>> Load(std::string_view chain_pem,
                                                      std::string_view key_pem,
                                                      std::string_view bundle_pem,
                                                      const Clock& clock);
  ~Issuer();
  Issuer(const Issuer&) = delete;
  Issuer& operator=(const Issuer&) = delete;

  // Signs `csr_pem` (PKCS#10) as `spec`. Refused: a CSR whose signature does not verify
  // (InvalidArgument), a key other than ECDSA P-256 (InvalidArgument), a CSR that asks for an
  // identity or DNS name other than `spec`'s, or for any extension besides subjectAltName
  // (PermissionDenied, naming what it asked for).
  absl::StatusOr<IssuedCertificate> SignCsr(std::string_view csr_pem, const LeafSpec& spec) const;

  const std::string& certificate_pem() const { return certificate_pem_; }  // the signing cert
  const std::string& chain_pem() const { return chain_pem_; }  // signing cert + intermediates
  const std::string& key_pem() const { return key_pem_; }
  const std::string& trust_bundle_pem() const { return bundle_pem_; }
  WallTime not_after() const { return not_after_; }
  bool self_signed() const { return self_signed_; }

 private:
  struct Keys;
  Issuer(const Clock& clock, std::unique_ptr<Keys> keys);
  const Clock& clock_;
  std::unique_ptr<Keys> keys_;
  std::string certificate_pem_;
  std::string chain_pem_;
  std::string key_pem_;
  std::string bundle_pem_;
  WallTime not_after_;
  bool self_signed_ = false;
};

// "spiffe://<trust_domain>/ns/<ns>/sa/<sa>", or InvalidArgument when a part is empty or holds a
// character SPIFFE does not allow in a path segment (letters, digits, '.', '-', '_').
absl::StatusOr<std::string> SpiffeId(std::string_view trust_domain, std::string_view ns,
                                     std::string_view service_account);

}  // namespace weft::ca
