// weftctl: the operator's CLI for weft-cp's config API.
//
// Exit codes a script can rely on: 0 success; 1 refused (invalid config, not found, a proxy
// NACKed); 2 usage error; 3 `wait` timed out (the laggards are listed); 4 weft-cp unreachable
// or another RPC failure.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/flags.h"
#include "common/strings.h"
#include "common/yaml_proto.h"
#include "control-plane/ca/token_cli.h"
#include "control-plane/model/model.h"
#include "google/protobuf/util/json_util.h"
#include "weft/config/v1/config_service.grpc.pb.h"

namespace {

namespace fs = std::filesystem;
using namespace weft::config::v1;  // NOLINT

constexpr int kOk = 0, kRefused = 1, kUsage = 2, kTimeout = 3, kRpcError = 4;

// Deadline of every RPC (--rpc-timeout), so a server that accepts connections but never
// answers cannot hang a script. Writes get longer by default: an apply of a whole mesh is
// validated and translated before it answers, and if the deadline passes anyway weftctl learns
// the outcome (Settle) instead of guessing.
constexpr std::chrono::seconds kReadTimeout(10), kWriteTimeout(60);
std::chrono::milliseconds g_rpc_timeout = kReadTimeout;
std::chrono::milliseconds g_write_timeout = kWriteTimeout;

void SetDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() + g_rpc_timeout);
}

// A random id naming one write call (ApplyRequest.request_id), for Settle.
std::string NewRequestId() {
  std::random_device rd;
  std::string out;
  for (int i = 0; i < 4; ++i) absl::StrAppend(&out, absl::Hex(rd(), absl::kZeroPad8));
  return out;
}

int Fail(int code, const std::string& message) {
  std::fprintf(stderr, "weftctl: %s\n", message.c_str());
  return code;
}

int RpcFail(const grpc::Status& s) {
  bool refused = s.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
                 s.error_code() == grpc::StatusCode::NOT_FOUND ||
                 s.error_code() == grpc::StatusCode::FAILED_PRECONDITION;
  return Fail(refused ? kRefused : kRpcError, s.error_message());
}

// gRPC refuses an oversized message before weft-cp sees it, with "Received message larger than
// max (N vs. M)": turn that into what happened, with our own count of the bytes.
std::optional<std::string> TooLarge(const grpc::Status& s, size_t request_bytes) {
  if (s.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED) return std::nullopt;
  const std::string& m = s.error_message();
  std::string limit = "weft-cp's --max-api-request-bytes";
  size_t vs = m.find(" vs. ");
  if (m.find("larger than max") != std::string::npos && vs != std::string::npos) {
    size_t end = m.find(')', vs);
    if (end != std::string::npos) limit = m.substr(vs + 5, end - vs - 5);
  }
  return absl::StrCat("too large: ", request_bytes, " bytes, limit ", limit,
                      " (split the files into several applies, or raise weft-cp's "
                      "--max-api-request-bytes)");
}

// Outcomes of a write whose answer did not come (deadline, dropped connection): weft-cp may
// have committed it or not; Settle says which and, if not, makes sure it never will.
bool MaySettle(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::INTERNAL:
      return true;
    default:
      return false;
  }
}

// Settles write `id` after `s`. Returns the revision it committed at, or the exit code.
std::variant<int64_t, int> SettleWrite(ConfigService::Stub* stub, const std::string& id,
                                       const grpc::Status& s, std::string_view verb) {
  SettleRequest req;
  req.set_request_id(id);
  SettleResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + kReadTimeout);
  grpc::Status settled = stub->Settle(&ctx, req, &resp);
  if (!settled.ok()) {
    return Fail(kRpcError, absl::StrCat(s.error_message(), "; whether it was ", weft::Sv(verb),
                                        " is unknown (weft-cp did not answer: ",
                                        settled.error_message(), "): check with `weftctl get`"));
  }
  if (!resp.committed()) {
    std::string why = s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED
                          ? absl::StrCat("weft-cp did not answer within ",
                                         std::chrono::duration<double>(g_write_timeout).count(),
                                         " s (--rpc-timeout)")
                          : s.error_message();
    return Fail(kRpcError, absl::StrCat("not ", weft::Sv(verb), ": ", why,
                                        "; nothing changed, and weft-cp will not apply it late"));
  }
  std::fprintf(stderr, "weftctl: %s (the answer came late: %s)\n", std::string(verb).c_str(),
               s.error_message().c_str());
  return resp.revision();
}

// Reads Weft objects (documents with `kind`) from files or directories of YAML/JSON.
absl::Status ReadObjects(const std::vector<std::string>& paths, std::vector<ConfigObject>* out) {
  std::vector<std::string> files;
  for (const std::string& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      for (const auto& e : fs::recursive_directory_iterator(p, ec)) {
        std::string ext = e.path().extension().string();
        if (e.is_regular_file() && (ext == ".yaml" || ext == ".yml" || ext == ".json")) {
          files.push_back(e.path().string());
        }
      }
    } else {
      files.push_back(p);
    }
  }
  std::sort(files.begin(), files.end());
  for (const std::string& f : files) {
    auto text = weft::ReadFile(f);
    if (!text.ok()) return text.status();
    auto docs = weft::ParseYamlDocuments(*text, f);
    if (!docs.ok()) return docs.status();
    std::vector<weft::YamlDocument> weft_docs;
    for (auto& d : *docs) {
      if (d.empty) continue;
      if (!d.top_scalars.contains("kind")) {
        return absl::InvalidArgumentError(absl::StrCat(
            f, ":", d.line,
            ": not a Weft object (no \"kind\"); raw Envoy resources belong in --config-dir"));
      }
      weft_docs.push_back(std::move(d));
    }
    auto objects = weft::cp::ParseConfigDocuments(weft_docs);
    if (!objects.ok()) return objects.status();
    out->insert(out->end(), objects->begin(), objects->end());
  }
  return absl::OkStatus();
}

std::string ToJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = true;
  o.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

std::string Laggard(const ProxyStatus& p) {
  std::vector<std::string> why;
  for (const auto& t : p.types()) {
    if (!t.nack_error().empty()) {
      why.push_back(absl::StrCat(t.type(), " NACKed: ", t.nack_error()));
    } else if (t.awaiting_ack()) {
      why.push_back(absl::StrCat(t.type(), " awaiting ACK of ", t.sent_version()));
    }
  }
  if (why.empty()) why.push_back("not yet sent the latest config");
  return absl::StrCat(p.node_id().empty() ? "(no node id)" : p.node_id(), " [stream ",
                      p.stream_id(), "]: ", absl::StrJoin(why, "; "));
}

// Waits until weft-cp serves `revision` and every connected proxy ACKed it.
int Wait(ConfigService::Stub* stub, int64_t revision, int64_t timeout_s) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  StatusResponse last;
  while (true) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    StatusResponse resp;
    grpc::Status s = stub->Status(&ctx, StatusRequest(), &resp);
    if (!s.ok()) return RpcFail(s);
    if (revision <= 0) revision = resp.revision();
    bool published = resp.published_revision() >= revision;
    std::vector<std::string> nacks;
    size_t synced = 0;
    for (const auto& p : resp.proxies()) {
      if (p.in_sync()) ++synced;
      for (const auto& t : p.types()) {
        if (!t.nack_error().empty()) nacks.push_back(Laggard(p));
      }
    }
    if (published && nacks.empty() && synced == static_cast<size_t>(resp.proxies_size())) {
      std::printf("revision %lld: all %d proxies in sync\n", static_cast<long long>(revision),
                  resp.proxies_size());
      return kOk;
    }
    if (published && !nacks.empty()) {
      std::fprintf(stderr, "weftctl: revision %lld was refused by proxies:\n",
                   static_cast<long long>(revision));
      for (const auto& n : nacks) std::fprintf(stderr, "  %s\n", n.c_str());
      return kRefused;
    }
    last = resp;
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::fprintf(stderr, "weftctl: timed out waiting for revision %lld (served: %lld)\n",
               static_cast<long long>(revision), static_cast<long long>(last.published_revision()));
  if (!last.publish_error().empty()) {
    std::fprintf(stderr, "  publish error: %s\n", last.publish_error().c_str());
  }
  for (const auto& p : last.proxies()) {
    if (!p.in_sync()) std::fprintf(stderr, "  laggard: %s\n", Laggard(p).c_str());
  }
  return kTimeout;
}

int Status(ConfigService::Stub* stub, const std::string& node) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  StatusRequest req;
  req.set_node_id(node);
  StatusResponse resp;
  grpc::Status s = stub->Status(&ctx, req, &resp);
  if (!s.ok()) return RpcFail(s);
  std::printf("revision %lld (serving %lld), %d proxies connected\n",
              static_cast<long long>(resp.revision()),
              static_cast<long long>(resp.published_revision()), resp.proxies_size());
  if (!resp.publish_error().empty())
    std::printf("publish error: %s\n", resp.publish_error().c_str());
  std::printf("%-24s %-6s %-8s %-9s %-18s %-18s %s\n", "NODE", "MODE", "IN-SYNC", "TYPE", "SENT",
              "ACKED", "NACK");
  for (const auto& p : resp.proxies()) {
    for (const auto& t : p.types()) {
      std::printf("%-24s %-6s %-8s %-9s %-18s %-18s %s\n", p.node_id().c_str(), p.mode().c_str(),
                  p.in_sync() ? "yes" : "no", t.type().c_str(), t.sent_version().c_str(),
                  t.acked_version().c_str(), t.nack_error().c_str());
    }
  }
  return kOk;
}

}  // namespace

int main(int argc, char** argv) {
  std::string server = "127.0.0.1:18001";
  std::vector<std::string> files;
  bool wait = false;
  bool dry_run = false;
  int64_t timeout_s = 30;
  int64_t revision = 0;
  int64_t rpc_timeout_s = 0;
  std::string node;
  weft::FlagSet flags("weftctl",
                      "COMMAND [ARGS]\n\nCommands:\n"
                      "  apply -f FILE|DIR [--wait] [--dry-run]  create or update objects\n"
                      "  delete KIND/NAMESPACE/NAME... | -f FILE  delete objects\n"
                      "  get [KIND | KIND/NAMESPACE/NAME]          print objects as JSON\n"
                      "  status [--node ID]                        proxies, ACKs and NACKs\n"
                      "  wait [--revision N]                       until every proxy ACKed\n"
                      "  proxy-config NODE                         what a node is served (JSON)\n"
                      "  version\n" +
                          std::string(weft::ca::kTokenUsage) +
                          "\n"
                          "Exit codes: 0 ok, 1 refused, 2 usage, 3 wait timed out, 4 RPC error");
  flags.String("server", &server, "weft-cp config API address");
  flags.StringList("f", &files, "file or directory of Weft YAML objects (repeatable)");
  flags.Bool("wait", &wait, "after apply, wait until every connected proxy ACKed");
  flags.Bool("dry-run", &dry_run, "validate only; change nothing");
  flags.Int("timeout", &timeout_s, "seconds to wait before naming the laggards");
  flags.Int("revision", &revision, "revision to wait for (default: the latest)");
  flags.String("node", &node, "status: only this node id; token create: bind the token to it");
  flags.Int("rpc-timeout", &rpc_timeout_s,
            "deadline of each RPC to weft-cp, in seconds (default 10, 60 for apply and delete)");
  weft::ca::TokenCliFlags token_flags;
  weft::ca::AddTokenFlags(&flags, &token_flags);
  if (auto s = flags.Parse(argc, argv); !s.ok()) return Fail(kUsage, std::string(s.message()));
  if (flags.help_requested()) {
    std::fputs(flags.Help().c_str(), stdout);
    return kOk;
  }
  const auto& args = flags.positional();
  if (flags.version_requested() || (!args.empty() && args[0] == "version")) {
    std::printf("weftctl %s\n", std::string(weft::WeftVersion()).c_str());
    return kOk;
  }
  if (args.empty()) return Fail(kUsage, "missing command (see --help)");
  if (rpc_timeout_s < 0) return Fail(kUsage, "--rpc-timeout must be positive");
  if (rpc_timeout_s > 0) g_rpc_timeout = g_write_timeout = std::chrono::seconds(rpc_timeout_s);
  const std::string& cmd = args[0];

  grpc::ChannelArguments channel_args;
  channel_args.SetMaxReceiveMessageSize(-1);  // `get` of a whole mesh
  auto channel =
      grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), channel_args);
  auto stub = ConfigService::NewStub(channel);

  if (cmd == "apply") {
    if (files.empty()) return Fail(kUsage, "apply needs -f FILE|DIR");
    std::vector<ConfigObject> objects;
    if (auto s = ReadObjects(files, &objects); !s.ok()) {
      return Fail(kRefused, std::string(s.message()));
    }
    ApplyRequest req;
    for (auto& o : objects) *req.add_objects() = std::move(o);
    req.set_dry_run(dry_run);
    req.set_request_id(NewRequestId());
    ApplyResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + g_write_timeout);
    grpc::Status s = stub->Apply(&ctx, req, &resp);
    if (auto too_large = TooLarge(s, req.ByteSizeLong())) return Fail(kRefused, *too_large);
    if (!s.ok() && MaySettle(s) && !dry_run) {
      auto settled = SettleWrite(stub.get(), req.request_id(), s, "applied");
      if (const int* code = std::get_if<int>(&settled)) return *code;
      int64_t rev = std::get<int64_t>(settled);
      std::printf("revision %lld\n", static_cast<long long>(rev));
      return wait ? Wait(stub.get(), rev, timeout_s) : kOk;
    }
    if (!s.ok()) return RpcFail(s);
    for (const auto& k : resp.created()) std::printf("%s created\n", k.c_str());
    for (const auto& k : resp.updated()) std::printf("%s updated\n", k.c_str());
    for (const auto& k : resp.unchanged()) std::printf("%s unchanged\n", k.c_str());
    if (dry_run) {
      std::printf("dry run: valid, nothing stored\n");
      return kOk;
    }
    std::printf("revision %lld\n", static_cast<long long>(resp.revision()));
    return wait ? Wait(stub.get(), resp.revision(), timeout_s) : kOk;
  }
  if (cmd == "delete") {
    DeleteRequest req;
    for (size_t i = 1; i < args.size(); ++i) req.add_keys(args[i]);
    if (!files.empty()) {
      std::vector<ConfigObject> objects;
      if (auto s = ReadObjects(files, &objects); !s.ok()) {
        return Fail(kRefused, std::string(s.message()));
      }
      for (const auto& o : objects) req.add_keys(weft::cp::ObjectKey(o));
    }
    if (req.keys().empty()) return Fail(kUsage, "delete needs KIND/NAMESPACE/NAME or -f FILE");
    req.set_request_id(NewRequestId());
    DeleteResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + g_write_timeout);
    grpc::Status s = stub->Delete(&ctx, req, &resp);
    if (!s.ok() && MaySettle(s)) {
      auto settled = SettleWrite(stub.get(), req.request_id(), s, "deleted");
      if (const int* code = std::get_if<int>(&settled)) return *code;
      int64_t rev = std::get<int64_t>(settled);
      std::printf("revision %lld\n", static_cast<long long>(rev));
      return wait ? Wait(stub.get(), rev, timeout_s) : kOk;
    }
    if (!s.ok()) return RpcFail(s);
    for (const auto& k : resp.deleted()) std::printf("%s deleted\n", k.c_str());
    std::printf("revision %lld\n", static_cast<long long>(resp.revision()));
    return wait ? Wait(stub.get(), resp.revision(), timeout_s) : kOk;
  }
  if (cmd == "get") {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    if (args.size() > 1 && args[1].find('/') != std::string::npos) {
      GetRequest req;
      req.set_key(args[1]);
      GetResponse resp;
      grpc::Status s = stub->Get(&ctx, req, &resp);
      if (!s.ok()) return RpcFail(s);
      std::printf("%s\n", ToJson(resp.object()).c_str());
      return kOk;
    }
    ListRequest req;
    if (args.size() > 1) req.set_kind(args[1]);
    ListResponse resp;
    grpc::Status s = stub->List(&ctx, req, &resp);
    if (!s.ok()) return RpcFail(s);
    std::printf("%s\n", ToJson(resp).c_str());
    return kOk;
  }
  if (cmd == "token") {
    return weft::ca::RunTokenCommand(args, token_flags, node, channel, g_rpc_timeout);
  }
  if (cmd == "status") return Status(stub.get(), node);
  if (cmd == "wait") return Wait(stub.get(), revision, timeout_s);
  if (cmd == "proxy-config") {
    if (args.size() != 2) return Fail(kUsage, "proxy-config needs a NODE id");
    ProxyConfigRequest req;
    req.set_node_id(args[1]);
    ProxyConfigResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub->ProxyConfig(&ctx, req, &resp);
    if (!s.ok()) return RpcFail(s);
    std::printf("%s\n", resp.json().c_str());
    return kOk;
  }
  return Fail(kUsage, absl::StrCat("unknown command \"", cmd, "\" (see --help)"));
}
