#include "control-plane/ca/service.h"

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/metrics/metrics.h"
#include "common/strings.h"
#include "weft/ca/v1/ca.grpc.pb.h"

namespace weft::ca {
namespace {

// absl and gRPC share the canonical status codes, number for number.
grpc::Status ToGrpc(const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

constexpr size_t kMaxCsrBytes = 16 * 1024;

// The token from "authorization: Bearer <token>", or "".
std::string BearerToken(const grpc::ServerContextBase& ctx) {
  auto it = ctx.client_metadata().find("authorization");
  if (it == ctx.client_metadata().end()) return "";
  std::string value(it->second.data(), it->second.size());
  constexpr std::string_view kBearer = "Bearer ";
  if (value.rfind(kBearer, 0) != 0) return "";
  return value.substr(kBearer.size());
}

// The callback API, as the xDS services on the same server: no sync thread pool of its own.
// Signing is one ECDSA signature and one store read, short enough to run on gRPC's thread.
class CertificateServiceImpl final : public v1::CertificateService::CallbackService {
 public:
  CertificateServiceImpl(const Authority* authority, metrics::Registry* registry)
      : authority_(authority),
        issued_(
            registry
                ->AddCounter("weft_cp_ca_certificates_issued_total", "Workload certificates signed")
                ->Get()),
        refused_(registry->AddCounter("weft_cp_ca_sign_refused_total",
                                      "Certificate requests refused, by gRPC status code",
                                      {"code"})) {}

  grpc::ServerUnaryReactor* Sign(grpc::CallbackServerContext* ctx, const v1::SignRequest* req,
                                 v1::SignResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(DoSign(*ctx, *req, resp));
    return reactor;
  }

  grpc::ServerUnaryReactor* GetTrustBundle(grpc::CallbackServerContext* ctx,
                                           const v1::GetTrustBundleRequest*,
                                           v1::TrustBundle* resp) override {
    resp->set_trust_bundle_pem(authority_->trust_bundle_pem());
    resp->set_trust_domain(authority_->trust_domain());
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  grpc::Status DoSign(const grpc::CallbackServerContext& ctx, const v1::SignRequest& req,
                      v1::SignResponse* resp) {
    absl::StatusOr<v1::SignResponse> r;
    std::string token = BearerToken(ctx);
    if (token.empty()) {
      r = absl::UnauthenticatedError(
          "missing bootstrap token (metadata \"authorization: Bearer <token>\")");
    } else if (req.csr_pem().size() > kMaxCsrBytes) {
      r = absl::InvalidArgumentError(absl::StrCat("CSR larger than ", kMaxCsrBytes, " bytes"));
    } else {
      r = authority_->Sign(req, token);
    }
    if (!r.ok()) {
      refused_->WithLabels({absl::StatusCodeToString(r.status().code())})->Inc();
      WEFT_LOG(kWarning) << "CA: refused a certificate for node \"" << req.node_id() << "\" from "
                         << ctx.peer() << ": " << r.status().message();
      return ToGrpc(r.status());
    }
    issued_->Inc();
    WEFT_LOG(kInfo) << "CA: issued " << r->spiffe_id() << " (serial " << r->serial()
                    << ") to node \"" << req.node_id() << "\"";
    *resp = *std::move(r);
    return grpc::Status::OK;
  }

  const Authority* authority_;
  metrics::Counter* issued_;
  metrics::Family<metrics::Counter>* refused_;
};

class TokenServiceImpl final : public v1::TokenService::Service {
 public:
  explicit TokenServiceImpl(const TokenRegistry* tokens) : tokens_(tokens) {}

  grpc::Status CreateToken(grpc::ServerContext*, const v1::CreateTokenRequest* req,
                           v1::CreateTokenResponse* resp) override {
    std::optional<Seconds> ttl;
    if (req->has_ttl()) ttl = Seconds(req->ttl().seconds());
    auto r = tokens_->Create(req->scope(), ttl, req->description());
    if (!r.ok()) return ToGrpc(r.status());
    WEFT_LOG(kInfo) << "CA: token " << r->info().id() << " created for " << r->info().spiffe_id()
                    << (req->scope().node_id().empty()
                            ? std::string()
                            : absl::StrCat(" on node \"", req->scope().node_id(), "\""));
    *resp = *std::move(r);
    return grpc::Status::OK;
  }

  grpc::Status ListTokens(grpc::ServerContext*, const v1::ListTokensRequest* req,
                          v1::ListTokensResponse* resp) override {
    auto r = tokens_->List(req->include_revoked());
    if (!r.ok()) return ToGrpc(r.status());
    for (auto& t : *r) *resp->add_tokens() = std::move(t);
    return grpc::Status::OK;
  }

  grpc::Status RevokeToken(grpc::ServerContext*, const v1::RevokeTokenRequest* req,
                           v1::RevokeTokenResponse* resp) override {
    auto r = tokens_->Revoke(req->id());
    if (!r.ok()) return ToGrpc(r.status());
    WEFT_LOG(kInfo) << "CA: token " << r->id() << " revoked";
    *resp->mutable_info() = *std::move(r);
    return grpc::Status::OK;
  }

 private:
  const TokenRegistry* tokens_;
};

}  // namespace

void AddCaFlags(FlagSet* flags, CaFlags* out) {
  flags->Bool("ca", &out->enabled,
              "run the certificate authority (weft.ca.v1 on the xDS port, tokens on the API port)");
  flags->String("trust-domain", &out->trust_domain,
                "SPIFFE trust domain: identities are spiffe://DOMAIN/ns/NS/sa/SA");
  flags->Int("ca-root-ttl-days", &out->root_ttl_days,
             "lifetime of a root generated on first start");
  flags->Int("ca-workload-ttl-seconds", &out->workload_ttl_seconds,
             "default and longest lifetime of a workload certificate");
  flags->String("ca-cert", &out->cert_file,
                "operator CA: PEM signing certificate, then its intermediates (instead of the "
                "stored root)");
  flags->String("ca-key", &out->key_file, "operator CA: PEM private key of --ca-cert");
  flags->String("ca-bundle", &out->bundle_file,
                "operator CA: PEM root(s) --ca-cert chains to (empty if it is a root)");
}

CaServer::~CaServer() = default;

absl::StatusOr<std::unique_ptr<CaServer>> CaServer::Start(const CaFlags& flags, cp::Store* store,
                                                          metrics::Registry* registry) {
  if (!flags.enabled) return std::unique_ptr<CaServer>();
  if (flags.root_ttl_days <= 0 || flags.workload_ttl_seconds <= 0) {
    return absl::InvalidArgumentError("CA lifetimes must be positive");
  }
  CaOptions options;
  options.trust_domain = flags.trust_domain;
  options.root_ttl = Seconds(flags.root_ttl_days * 24 * 3600);
  options.workload_ttl = Seconds(flags.workload_ttl_seconds);
  options.min_workload_ttl = std::min(options.min_workload_ttl, options.workload_ttl);
  options.cert_file = flags.cert_file;
  options.key_file = flags.key_file;
  options.bundle_file = flags.bundle_file;
  auto authority = Authority::Open(store, RealClock::Get(), options);
  if (!authority.ok()) return authority.status();
  std::unique_ptr<CaServer> server(new CaServer);
  server->authority_ = *std::move(authority);
  server->certificates_ =
      std::make_unique<CertificateServiceImpl>(server->authority_.get(), registry);
  server->tokens_ = std::make_unique<TokenServiceImpl>(&server->authority_->tokens());
  WEFT_LOG(kInfo) << "CA: trust domain " << options.trust_domain << ", signing CA "
                  << server->authority_->origin();
  return server;
}

void CaServer::RegisterProxyServices(grpc::ServerBuilder* builder) {
  builder->RegisterService(certificates_.get());
}
void CaServer::RegisterOperatorServices(grpc::ServerBuilder* builder) {
  builder->RegisterService(tokens_.get());
}

}  // namespace weft::ca
