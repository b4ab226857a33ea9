#include "control-plane/ca/ca.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "common/proto_util.h"
#include "common/strings.h"
#include "common/yaml_proto.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb.h"

namespace weft::ca {
namespace {

using google::protobuf::Timestamp;

constexpr std::string_view kTokenVersion = "weft1";

Timestamp ToProto(WallTime t) {
  Timestamp ts;
  ts.set_seconds(std::chrono::duration_cast<Seconds>(t.time_since_epoch()).count());
  return ts;
}
WallTime FromProto(const Timestamp& ts) { return WallTime(Seconds(ts.seconds())); }

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n));
  return out;
}

std::string Sha256(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof(digest));
}

bool IsHexId(std::string_view id) {
  return id.size() == 16 && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string TokenKey(std::string_view id) { return absl::StrCat(Sv(kTokenPrefix), Sv(id)); }

absl::StatusOr<v1::StoredToken> ReadToken(cp::Store* store, std::string_view id) {
  auto kv = store->Get(TokenKey(id));
  if (!kv.ok()) return kv.status();
  if (!kv->has_value()) return absl::NotFoundError(absl::StrCat("no token \"", Sv(id), "\""));
  v1::StoredToken stored;
  if (!stored.ParseFromString((*kv)->value)) {
    return absl::DataLossError(absl::StrCat("token ", Sv(id), ": stored record does not parse"));
  }
  return stored;
}

std::string FormatTime(WallTime t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromChrono(t), absl::UTCTimeZone());
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Tokens

TokenRegistry::TokenRegistry(cp::Store* store, const Clock& clock, std::string trust_domain)
    : store_(store), clock_(clock), trust_domain_(std::move(trust_domain)) {}

absl::StatusOr<v1::CreateTokenResponse> TokenRegistry::Create(const v1::TokenScope& scope,
                                                              std::optional<Seconds> ttl,
                                                              std::string description) const {
  auto spiffe = SpiffeId(trust_domain_, scope.namespace_(), scope.service_account());
  if (!spiffe.ok()) return spiffe.status();
  if (ttl && *ttl < Seconds(0)) return absl::InvalidArgumentError("ttl must not be negative");
  std::string id = absl::BytesToHexString(RandomBytes(8));
  std::string secret = absl::WebSafeBase64Escape(RandomBytes(32));
  WallTime now = clock_.WallNow();
  v1::StoredToken stored;
  v1::TokenInfo* info = stored.mutable_info();
  info->set_id(id);
  *info->mutable_scope() = scope;
  info->set_spiffe_id(*spiffe);
  info->set_description(std::move(description));
  *info->mutable_created() = ToProto(now);
  if (ttl && *ttl > Seconds(0)) *info->mutable_expires() = ToProto(now + *ttl);
  stored.set_secret_sha256(Sha256(secret));
  if (auto put = store_->Put(TokenKey(id), stored.SerializeAsString()); !put.ok()) {
    return put.status();
  }
  v1::CreateTokenResponse resp;
  resp.set_token(absl::StrCat(Sv(kTokenVersion), ".", id, ".", secret));
  *resp.mutable_info() = *info;
  return resp;
}

absl::StatusOr<std::vector<v1::TokenInfo>> TokenRegistry::List(bool include_revoked) const {
  auto kvs = store_->Range(kTokenPrefix);
  if (!kvs.ok()) return kvs.status();
  std::vector<v1::TokenInfo> out;
  for (const cp::KeyValue& kv : *kvs) {
    v1::StoredToken stored;
    if (!stored.ParseFromString(kv.value)) continue;
    if (stored.info().has_revoked() && !include_revoked) continue;
    out.push_back(stored.info());
  }
  std::sort(out.begin(), out.end(), [](const v1::TokenInfo& a, const v1::TokenInfo& b) {
    return std::make_pair(a.created().seconds(), a.id()) <
           std::make_pair(b.created().seconds(), b.id());
  });
  return out;
}

absl::StatusOr<v1::TokenInfo> TokenRegistry::Revoke(std::string_view id) const {
  if (!IsHexId(id)) return absl::NotFoundError(absl::StrCat("no token \"", Sv(id), "\""));
  auto stored = ReadToken(store_, id);
  if (!stored.ok()) return stored.status();
  if (!stored->info().has_revoked()) {
    *stored->mutable_info()->mutable_revoked() = ToProto(clock_.WallNow());
    if (auto put = store_->Put(TokenKey(id), stored->SerializeAsString()); !put.ok()) {
      return put.status();
    }
  }
  return stored->info();
}

absl::StatusOr<v1::TokenInfo> TokenRegistry::Authenticate(std::string_view token,
                                                          std::string_view node_id) const {
  std::vector<std::string_view> parts;
  for (absl::string_view p : absl::StrSplit(Sv(token), '.')) parts.emplace_back(p.data(), p.size());
  if (parts.size() != 3 || parts[0] != kTokenVersion || !IsHexId(parts[1]) || parts[2].empty()) {
    return absl::UnauthenticatedError("malformed bootstrap token (expected weft1.<id>.<secret>)");
  }
  const absl::Status invalid = absl::UnauthenticatedError("invalid bootstrap token");
  auto stored = ReadToken(store_, parts[1]);
  if (absl::IsNotFound(stored.status())) return invalid;
  if (!stored.ok()) return stored.status();
  std::string digest = Sha256(parts[2]);
  if (stored->secret_sha256().size() != digest.size() ||
      CRYPTO_memcmp(digest.data(), stored->secret_sha256().data(), digest.size()) != 0) {
    return invalid;
  }
  const v1::TokenInfo& info = stored->info();
  if (info.has_revoked()) {
    return absl::UnauthenticatedError(absl::StrCat("bootstrap token ", info.id(), " was revoked"));
  }
  if (info.has_expires() && clock_.WallNow() >= FromProto(info.expires())) {
    return absl::UnauthenticatedError(absl::StrCat("bootstrap token ", info.id(), " expired at ",
                                                   FormatTime(FromProto(info.expires()))));
  }
  if (!info.scope().node_id().empty() && info.scope().node_id() != node_id) {
    return absl::PermissionDeniedError(absl::StrCat("bootstrap token ", info.id(),
                                                    " is bound to node \"", info.scope().node_id(),
                                                    "\", not \"", Sv(node_id), "\""));
  }
  return info;
}

// ---------------------------------------------------------------------------------------------
// Authority

Authority::Authority(cp::Store* store, const Clock& clock, CaOptions options,
                     std::unique_ptr<Issuer> issuer, std::string origin)
    : clock_(clock),
      options_(std::move(options)),
      issuer_(std::move(issuer)),
      tokens_(store, clock, options_.trust_domain),
      origin_(std::move(origin)) {}

absl::StatusOr<std::unique_ptr<Authority>> Authority::Open(cp::Store* store, const Clock& clock,
                                                           const CaOptions& options) {
  if (auto s = SpiffeId(options.trust_domain, "ns", "sa"); !s.ok()) return s.status();
  if (options.workload_ttl < options.min_workload_ttl) {
    return absl::InvalidArgumentError("the workload certificate lifetime is below the minimum");
  }
  if (!options.cert_file.empty() || !options.key_file.empty()) {
    if (options.cert_file.empty() || options.key_file.empty()) {
      return absl::InvalidArgumentError("an operator CA needs both its certificate and its key");
    }
    auto cert = ReadFile(options.cert_file);
    if (!cert.ok()) return cert.status();
    auto key = ReadFile(options.key_file);
    if (!key.ok()) return key.status();
    std::string bundle;
    if (!options.bundle_file.empty()) {
      auto b = ReadFile(options.bundle_file);
      if (!b.ok()) return b.status();
      bundle = *std::move(b);
    }
    auto issuer = Issuer::Load(*cert, *key, bundle, clock);
    if (!issuer.ok()) {
      return absl::Status(issuer.status().code(),
                          absl::StrCat(options.cert_file, ": ", issuer.status().message()));
    }
    return std::unique_ptr<Authority>(
        new Authority(store, clock, options, *std::move(issuer), "operator"));
  }

  auto kv = store->Get(kAuthorityKey);
  if (!kv.ok()) return kv.status();
  if (kv->has_value()) {
    v1::StoredAuthority stored;
    if (!stored.ParseFromString((*kv)->value)) {
      return absl::DataLossError("the stored CA does not parse");
    }
    if (stored.trust_domain() != options.trust_domain) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the stored CA is for trust domain \"", stored.trust_domain(), "\", not \"",
          options.trust_domain, "\"; changing it would change every identity it issued"));
    }
    auto issuer = Issuer::Load(stored.certificate_chain_pem(), stored.private_key_pem(),
                               stored.trust_bundle_pem(), clock);
    if (!issuer.ok()) {
      return absl::Status(issuer.status().code(),
                          absl::StrCat("the stored CA: ", issuer.status().message()));
    }
    return std::unique_ptr<Authority>(
        new Authority(store, clock, options, *std::move(issuer), "stored"));
  }

  CaSpec spec;
  spec.trust_domain = options.trust_domain;
  spec.ttl = options.root_ttl;
  auto issuer = Issuer::GenerateRoot(spec, clock);
  if (!issuer.ok()) return issuer.status();
  v1::StoredAuthority stored;
  stored.set_trust_domain(options.trust_domain);
  stored.set_certificate_chain_pem((*issuer)->chain_pem());
  stored.set_private_key_pem((*issuer)->key_pem());
  stored.set_trust_bundle_pem((*issuer)->trust_bundle_pem());
  *stored.mutable_created() = ToProto(clock.WallNow());
  if (auto put = store->Put(kAuthorityKey, stored.SerializeAsString()); !put.ok()) {
    return put.status();
  }
  return std::unique_ptr<Authority>(
      new Authority(store, clock, options, *std::move(issuer), "generated"));
}

absl::StatusOr<v1::SignResponse> Authority::Sign(const v1::SignRequest& request,
                                                 std::string_view token) const {
  auto grant = tokens_.Authenticate(token, request.node_id());
  if (!grant.ok()) return grant.status();
  LeafSpec spec;
  spec.spiffe_id = grant->spiffe_id();
  spec.ttl = options_.workload_ttl;
  if (request.has_ttl() && request.ttl().seconds() > 0) {
    spec.ttl = std::clamp(Seconds(request.ttl().seconds()), options_.min_workload_ttl,
                          options_.workload_ttl);
  }
  auto issued = issuer_->SignCsr(request.csr_pem(), spec);
  if (!issued.ok()) return issued.status();
  v1::SignResponse resp;
  resp.set_certificate_chain_pem(issued->chain_pem);
  resp.set_trust_bundle_pem(issuer_->trust_bundle_pem());
  resp.set_spiffe_id(spec.spiffe_id);
  *resp.mutable_not_before() = ToProto(issued->not_before);
  *resp.mutable_not_after() = ToProto(issued->not_after);
  resp.set_serial(issued->serial_hex);
  return resp;
}

xds::ResourcePtr Authority::TrustBundleSecret() const {
  envoy::extensions::transport_sockets::tls::v3::Secret secret;
  secret.set_name(std::string(kTrustBundleSecretName));
  secret.mutable_validation_context()->mutable_trusted_ca()->set_inline_string(
      issuer_->trust_bundle_pem());
  auto r = xds::MakeResource(PackAny(secret));
  // A Secret we built ourselves always packs; anything else is a bug worth stopping for.
  if (!r.ok()) {
    WEFT_LOG(kError) << "trust bundle secret: " << r.status().message();
    std::abort();
  }
  return *r;
}

}  // namespace weft::ca
