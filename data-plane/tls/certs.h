// Keys, certificate signing requests and certificate inspection: what a proxy needs to obtain
// its workload certificate from weft-cp's CA (its key is made here and never leaves it) and to
// check what it got back, plus the crypto-level check of SDS Secrets that common/xds installs.
// Independent of the TLS engine (tls.h); weft-cp's CA links this part only.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/validation.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb.h"

namespace weft::tls {

using WallTime = std::chrono::system_clock::time_point;

// A new ECDSA P-256 private key as unencrypted PKCS#8 PEM.
absl::StatusOr<std::string> GenerateKey();

// A PKCS#10 request signed with `key_pem` (proof of possession), empty subject, asking for
// `spiffe_id` as its one URI SAN and for `dns_names` as DNS SANs.
absl::StatusOr<std::string> MakeCsr(std::string_view key_pem, std::string_view spiffe_id,
                                    const std::vector<std::string>& dns_names = {});

struct CertificateInfo {
  std::string subject;  // RFC 2253, "" when empty
  std::string issuer;
  std::vector<std::string> uri_sans;
  std::vector<std::string> dns_sans;
  WallTime not_before;
  WallTime not_after;
  bool is_ca = false;
  std::string key_type;  // "prime256v1", "secp384r1", "RSA-2048", ...
  std::string serial_hex;
  // The SPIFFE ID: the one URI SAN starting with spiffe://, or "" (none, or several).
  std::string spiffe_id;
};

// Every certificate in `pem`, in order; InvalidArgument when there is none or one is corrupt.
absl::StatusOr<std::vector<CertificateInfo>> InspectCertificates(std::string_view pem);

// Verifies `chain_pem` (leaf first, then intermediates) against the roots in `bundle_pem` at
// time `at`, for TLS client and server use. The error names the failing certificate and why
// ("certificate has expired", "unable to get local issuer certificate", ...).
absl::Status VerifyChain(std::string_view chain_pem, std::string_view bundle_pem, WallTime at);

// True when `key_pem` is the private key of the first certificate in `chain_pem`.
absl::StatusOr<bool> KeyMatchesCertificate(std::string_view key_pem, std::string_view chain_pem);

// The crypto-level check of a Secret that common/xds/tls_check.h cannot do: certificates parse,
// the key parses, matches the leaf and is of an allowed type (ECDSA P-256/P-384, RSA >= 2048),
// a CA bundle holds CA certificates. Errors with field paths under the current scope.
void CheckSecretMaterial(const envoy::extensions::transport_sockets::tls::v3::Secret& secret,
                         ValidationErrors* errors);

// Installs CheckSecretMaterial into common/xds, so ValidateResources runs it (weft-cp at apply
// time, weft-proxy before it ACKs). Call once at start-up, before threads start.
void InstallSecretChecks();

}  // namespace weft::tls
