#include "control-plane/ca/token_cli.h"

#include <grpcpp/grpcpp.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "weft/ca/v1/ca.grpc.pb.h"

namespace weft::ca {
namespace {

constexpr int kOk = 0, kRefused = 1, kUsage = 2, kRpcError = 4;

int Fail(int code, const std::string& message) {
  std::fprintf(stderr, "weftctl: %s\n", message.c_str());
  return code;
}

int RpcFail(const grpc::Status& s) {
  bool refused = s.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
                 s.error_code() == grpc::StatusCode::NOT_FOUND ||
                 s.error_code() == grpc::StatusCode::FAILED_PRECONDITION;
  if (s.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    return Fail(kRpcError, "weft-cp serves no token API (started with --noca?)");
  }
  return Fail(refused ? kRefused : kRpcError, s.error_message());
}

std::string Time(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(ts.seconds()),
                          absl::UTCTimeZone());
}

}  // namespace

void AddTokenFlags(FlagSet* flags, TokenCliFlags* out) {
  flags->String("namespace", &out->ns, "token create: the namespace of the identity");
  flags->String("service-account", &out->service_account,
                "token create: the service account of the identity");
  flags->String("ttl", &out->ttl, "token create: lifetime (e.g. 24h, 90m; 0 or empty: never)");
  flags->String("description", &out->description, "token create: a note kept with the token");
  flags->Bool("all", &out->all, "token list: revoked tokens too");
}

int RunTokenCommand(const std::vector<std::string>& args, const TokenCliFlags& flags,
                    const std::string& node, const std::shared_ptr<grpc::Channel>& channel,
                    std::chrono::milliseconds rpc_timeout) {
  auto stub = v1::TokenService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + rpc_timeout);
  const std::string verb = args.size() > 1 ? args[1] : "";
  if (verb == "create") {
    if (args.size() != 2) return Fail(kUsage, "token create takes flags only");
    if (flags.ns.empty() || flags.service_account.empty()) {
      return Fail(kUsage, "token create needs --namespace and --service-account");
    }
    v1::CreateTokenRequest req;
    req.mutable_scope()->set_namespace_(flags.ns);
    req.mutable_scope()->set_service_account(flags.service_account);
    req.mutable_scope()->set_node_id(node);
    req.set_description(flags.description);
    if (!flags.ttl.empty() && flags.ttl != "0") {
      absl::Duration d;
      if (!absl::ParseDuration(flags.ttl, &d) || d <= absl::ZeroDuration()) {
        return Fail(kUsage, absl::StrCat("--ttl \"", flags.ttl, "\": expected e.g. 24h or 90m"));
      }
      req.mutable_ttl()->set_seconds(absl::ToInt64Seconds(d));
    }
    v1::CreateTokenResponse resp;
    grpc::Status s = stub->CreateToken(&ctx, req, &resp);
    if (!s.ok()) return RpcFail(s);
    std::printf("%s\n", resp.token().c_str());
    std::fprintf(stderr, "token %s grants %s%s, expires %s\n", resp.info().id().c_str(),
                 resp.info().spiffe_id().c_str(),
                 node.empty() ? " on any node" : (" on node " + node).c_str(),
                 Time(resp.info().expires()).c_str());
    return kOk;
  }
  if (verb == "list") {
    if (args.size() != 2) return Fail(kUsage, "token list takes flags only");
    v1::ListTokensRequest req;
    req.set_include_revoked(flags.all);
    v1::ListTokensResponse resp;
    grpc::Status s = stub->ListTokens(&ctx, req, &resp);
    if (!s.ok()) return RpcFail(s);
    std::printf("%-16s %-44s %-16s %-20s %-20s %-20s %s\n", "ID", "IDENTITY", "NODE", "CREATED",
                "EXPIRES", "REVOKED", "DESCRIPTION");
    for (const v1::TokenInfo& t : resp.tokens()) {
      std::printf("%-16s %-44s %-16s %-20s %-20s %-20s %s\n", t.id().c_str(), t.spiffe_id().c_str(),
                  t.scope().node_id().empty() ? "*" : t.scope().node_id().c_str(),
                  Time(t.created()).c_str(), Time(t.expires()).c_str(), Time(t.revoked()).c_str(),
                  t.description().c_str());
    }
    return kOk;
  }
  if (verb == "revoke") {
    if (args.size() != 3) return Fail(kUsage, "token revoke needs one token ID");
    v1::RevokeTokenRequest req;
    req.set_id(args[2]);
    v1::RevokeTokenResponse resp;
    grpc::Status s = stub->RevokeToken(&ctx, req, &resp);
    if (!s.ok()) return RpcFail(s);
    std::printf("token %s revoked at %s\n", resp.info().id().c_str(),
                Time(resp.info().revoked()).c_str());
    return kOk;
  }
  return Fail(kUsage, "token needs create, list or revoke (see --help)");
}

}  // namespace weft::ca
