// weft-cp's certificate authority: the signing CA kept in the durable store (generated on first
// start) or given by the operator, the bootstrap tokens proxies authenticate with, and the
// trust bundle every node group gets as the SDS Secret "ROOTCA".
//
// Token model (docs/security.md): a token grants one identity,
// spiffe://<trust domain>/ns/<namespace>/sa/<service account>, from any node or from one node
// id. It reads "weft1.<id>.<secret>": the id is public (lists, revocation), the secret is 32
// random bytes of which only a SHA-256 is stored. Tokens may expire and are revoked by id.
//
// Thread safety: every method may be called from any thread (gRPC handler threads); state is
// in the Store, the Issuer is immutable.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/xds/resource.h"
#include "control-plane/ca/issuer.h"
#include "control-plane/store/store.h"
#include "weft/ca/v1/ca.pb.h"

namespace weft::ca {

// The Secret every node group is sent (the name weft-cp's translation refers to).
inline constexpr std::string_view kTrustBundleSecretName = "ROOTCA";
inline constexpr std::string_view kAuthorityKey = "/weft/ca/authority";
inline constexpr std::string_view kTokenPrefix = "/weft/ca/tokens/";

struct CaOptions {
  std::string trust_domain = "weft";
  Seconds root_ttl{10LL * 365 * 24 * 3600};
  // A workload certificate's default and longest lifetime.
  Seconds workload_ttl{24 * 3600};
  // Shortest lifetime a proxy may ask for (one-minute certificates for rotation tests).
  Seconds min_workload_ttl{60};
  // An operator's CA, instead of the stored one: PEM files.
  std::string cert_file;    // signing certificate, then intermediates above it
  std::string key_file;     // its private key
  std::string bundle_file;  // the root(s); empty when cert_file is a self-signed root
};

class TokenRegistry {
 public:
  TokenRegistry(cp::Store* store, const Clock& clock, std::string trust_domain);

  // InvalidArgument for a scope that makes no SPIFFE ID or a negative ttl.
  absl::StatusOr<v1::CreateTokenResponse> Create(const v1::TokenScope& scope,
                                                 std::optional<Seconds> ttl,
                                                 std::string description) const;
  absl::StatusOr<std::vector<v1::TokenInfo>> List(bool include_revoked) const;
  // NotFound for an unknown id; revoking twice keeps the first revocation time.
  absl::StatusOr<v1::TokenInfo> Revoke(std::string_view id) const;
  // What `token`, presented by `node_id`, speaks for. Unauthenticated: malformed, unknown, wrong
  // secret (one message for both, so ids cannot be probed), revoked, expired. PermissionDenied:
  // bound to another node.
  absl::StatusOr<v1::TokenInfo> Authenticate(std::string_view token,
                                             std::string_view node_id) const;

 private:
  cp::Store* store_;
  const Clock& clock_;
  const std::string trust_domain_;
};

class Authority {
 public:
  // The operator's CA when CaOptions names files; otherwise the one stored under kAuthorityKey,
  // generated and stored on first start. A stored CA of another trust domain is refused (every
  // identity it issued would change).
  static absl::StatusOr<std::unique_ptr<Authority>> Open(cp::Store* store, const Clock& clock,
                                                         const CaOptions& options);

  // Signs `csr_pem` for the identity `token` grants (see TokenRegistry::Authenticate), for
  // `ttl` clamped to [min_workload_ttl, workload_ttl] (0: workload_ttl).
  absl::StatusOr<v1::SignResponse> Sign(const v1::SignRequest& request,
                                        std::string_view token) const;

  // The SDS Secret "ROOTCA" holding the trust bundle, ready to publish to every node group.
  xds::ResourcePtr TrustBundleSecret() const;
  const std::string& trust_bundle_pem() const { return issuer_->trust_bundle_pem(); }
  const std::string& trust_domain() const { return options_.trust_domain; }
  const TokenRegistry& tokens() const { return tokens_; }
  // "generated", "stored" or "operator": where the signing CA came from (logs, status).
  const std::string& origin() const { return origin_; }

 private:
  Authority(cp::Store* store, const Clock& clock, CaOptions options, std::unique_ptr<Issuer> issuer,
            std::string origin);
  const Clock& clock_;
  const CaOptions options_;
  std::unique_ptr<Issuer> issuer_;
  TokenRegistry tokens_;
  std::string origin_;
};

}  // namespace weft::ca
