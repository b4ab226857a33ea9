#include "control-plane/api/config_service.h"

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <deque>

#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/strings.h"
#include "common/validation.h"
#include "common/xds/sensitive.h"
#include "common/xds/unknown_fields.h"
#include "control-plane/api/config_model.h"
#include "control-plane/api/write_tickets.h"
#include "control-plane/cache/snapshot_cache.h"
#include "control-plane/model/model.h"
#include "control-plane/server/xds_server.h"
#include "google/protobuf/util/json_util.h"
#include "weft/config/v1/config_service.grpc.pb.h"

namespace weft::cp {
namespace {

using namespace config::v1;  // NOLINT: the service's message types

// absl and gRPC both number their codes as google.rpc.Code does.
grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

// The YAML path refuses unknown fields; protobuf would keep a field this weft-cp does not know
// (sent by a newer weftctl, or by a client built from another schema) as "unknown" and the
// object would be stored without it. Refuse instead, naming the object and the field number.
constexpr std::string_view kUnknownField =
    "is unknown to this weft-cp (a client built for a newer schema?); refused rather than ignored";

// The message in a ConfigObject's oneof (the Service, Route, ...), or null.
const google::protobuf::Message* ObjectBody(const ConfigObject& o) {
  const google::protobuf::OneofDescriptor* oneof = o.GetDescriptor()->FindOneofByName("object");
  const google::protobuf::FieldDescriptor* f =
      oneof != nullptr ? o.GetReflection()->GetOneofFieldDescriptor(o, oneof) : nullptr;
  return f != nullptr ? &o.GetReflection()->GetMessage(o, f) : nullptr;
}

grpc::Status RefuseUnknownFields(const ValidationErrors& errors) {
  if (errors.ok()) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(errors.ToStatus().message()));
}

grpc::Status CheckKnownFields(const google::protobuf::Message& request) {
  ValidationErrors errors;
  ValidationErrors::Scope s(&errors, request.GetDescriptor()->name());
  xds::CheckNoUnknownFields(request, &errors, kUnknownField);
  return RefuseUnknownFields(errors);
}

// Objects are named by index and key, and paths start inside the object as in the YAML form
// ("objects[2] (Service/default/a).ports[0]: field number 9 ...").
grpc::Status CheckKnownFields(const ApplyRequest& request) {
  ValidationErrors errors;
  {
    ValidationErrors::Scope s(&errors, "ApplyRequest");
    const auto& unknown = request.GetReflection()->GetUnknownFields(request);
    for (int i = 0; i < unknown.field_count(); ++i) {
      errors.Add(absl::StrCat("field number ", unknown.field(i).number(), " ", Sv(kUnknownField)));
    }
  }
  for (int i = 0; i < request.objects_size(); ++i) {
    const ConfigObject& o = request.objects(i);
    std::string key = ObjectKey(o);
    ValidationErrors::Scope s(&errors, key.empty() ? absl::StrCat("objects[", i, "]")
                                                   : absl::StrCat("objects[", i, "] (", key, ")"));
    const auto& unknown = o.GetReflection()->GetUnknownFields(o);
    for (int j = 0; j < unknown.field_count(); ++j) {
      // A oneof member this weft-cp lacks: an object kind it does not know.
      errors.Add(absl::StrCat("field number ", unknown.field(j).number(), " ", Sv(kUnknownField),
                              " (an object kind this weft-cp does not know)"));
    }
    if (const google::protobuf::Message* body = ObjectBody(o)) {
      xds::CheckNoUnknownFields(*body, &errors, kUnknownField);
    }
  }
  return RefuseUnknownFields(errors);
}

// Time a commit takes once decided (store transaction, hand-off to the publisher): a write that
// would end later than this before the client's deadline is not started.
constexpr auto kCommitMargin = std::chrono::milliseconds(100);

class ConfigServiceImpl final : public ConfigService::Service {
 public:
  explicit ConfigServiceImpl(ConfigServiceDeps deps) : d_(deps) {}

  grpc::Status Apply(grpc::ServerContext* ctx, const ApplyRequest* req,
                     ApplyResponse* resp) override {
    if (grpc::Status s = CheckKnownFields(*req); !s.ok()) return s;
    std::vector<ConfigObject> objects(req->objects().begin(), req->objects().end());
    Gate gate(ctx, &tickets_, req->request_id(), "applied");
    auto r = d_.model->Apply(objects, req->dry_run(), gate.fn());
    gate.Finish(r.ok(), r.ok() ? r->revision() : 0);
    if (!r.ok()) return ToGrpc(r.status());
    *resp = *std::move(r);
    return grpc::Status::OK;
  }

  grpc::Status Delete(grpc::ServerContext* ctx, const DeleteRequest* req,
                      DeleteResponse* resp) override {
    if (grpc::Status s = CheckKnownFields(*req); !s.ok()) return s;
    Gate gate(ctx, &tickets_, req->request_id(), "deleted");
    auto r = d_.model->Delete({req->keys().begin(), req->keys().end()}, gate.fn());
    gate.Finish(r.ok(), r.ok() ? r->revision() : 0);
    if (!r.ok()) return ToGrpc(r.status());
    *resp = *std::move(r);
    return grpc::Status::OK;
  }

  grpc::Status Settle(grpc::ServerContext*, const SettleRequest* req,
                      SettleResponse* resp) override {
    if (grpc::Status s = CheckKnownFields(*req); !s.ok()) return s;
    if (req->request_id().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "request_id must not be empty");
    }
    WriteTickets::Outcome o = tickets_.Settle(req->request_id());
    resp->set_committed(o.committed);
    resp->set_revision(o.revision);
    return grpc::Status::OK;
  }

  grpc::Status Get(grpc::ServerContext*, const GetRequest* req, GetResponse* resp) override {
    if (grpc::Status s = CheckKnownFields(*req); !s.ok()) return s;
    auto r = d_.model->Get(req->key());
    if (!r.ok()) return ToGrpc(r.status());
    *resp->mutable_object() = *std::move(r);
    return grpc::Status::OK;
  }

  grpc::Status List(grpc::ServerContext*, const ListRequest* req, ListResponse* resp) override {
    if (grpc::Status s = CheckKnownFields(*req); !s.ok()) return s;
    *resp = d_.model->List(req->kind(), req->namespace_());
    return grpc::Status::OK;
  }

  grpc::Status Watch(grpc::ServerContext* ctx, const WatchRequest* req,
                     grpc::ServerWriter<config::v1::WatchEvent>* writer) override {
    if (grpc::Status s = CheckKnownFields(*req); !s.ok()) return s;
    std::mutex mu;
    std::condition_variable cv;
    std::deque<config::v1::WatchEvent> queue;
    auto watch = d_.store->WatchFrom(
        req->from_revision(), kStorePrefix, [&](const std::vector<cp::WatchEvent>& events) {
          std::lock_guard lock(mu);
          for (const cp::WatchEvent& e : events) {
            config::v1::WatchEvent out;
            out.set_revision(e.kv.mod_revision);
            out.set_type(e.type == cp::WatchEvent::kPut ? config::v1::WatchEvent::PUT
                                                        : config::v1::WatchEvent::DELETE);
            out.set_key(e.kv.key.substr(kStorePrefix.size()));
            if (e.type == cp::WatchEvent::kPut) out.mutable_object()->ParseFromString(e.kv.value);
            queue.push_back(std::move(out));
          }
          cv.notify_all();
        });
    if (!watch.ok()) return ToGrpc(watch.status());
    while (!ctx->IsCancelled()) {
      std::unique_lock lock(mu);
      cv.wait_for(lock, std::chrono::milliseconds(200), [&] { return !queue.empty(); });
      while (!queue.empty()) {
        config::v1::WatchEvent e = std::move(queue.front());
        queue.pop_front();
        lock.unlock();
        if (!writer->Write(e)) return grpc::Status::CANCELLED;
        lock.lock();
      }
    }
    return grpc::Status::CANCELLED;
  }

  grpc::Status Status(grpc::ServerContext*, const StatusRequest* req,
                      StatusResponse* resp) override {
    if (grpc::Status s = CheckKnownFields(*req); !s.ok()) return s;
    resp->set_revision(d_.model->revision());
    resp->set_published_revision(d_.publisher->PublishedRevision("model"));
    std::string error = d_.publisher->last_error();
    if (error.empty()) error = d_.model->last_error();
    resp->set_publish_error(error);
    for (const StreamSummary& s : d_.xds->Summaries()) {
      if (!req->node_id().empty() && s.node_id != req->node_id()) continue;
      ProxyStatus* p = resp->add_proxies();
      p->set_node_id(s.node_id);
      p->set_cluster(s.cluster);
      p->set_mode(s.mode);
      p->set_peer(s.peer);
      p->set_stream_id(s.stream_id);
      p->set_in_sync(s.in_sync);
      for (const StreamSummary::Type& t : s.types) {
        ResourceTypeStatus* ts = p->add_types();
        ts->set_type(std::string(xds::ShortName(t.type)));
        ts->set_sent_version(t.sent_version);
        ts->set_acked_version(t.acked_version);
        ts->set_awaiting_ack(t.awaiting_ack);
        ts->set_nack_error(t.nack_error);
        ts->set_last_push_to_ack_ms(t.last_push_to_ack_ms);
        ts->set_resources(t.resources);
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status ProxyConfig(grpc::ServerContext*, const ProxyConfigRequest* req,
                           ProxyConfigResponse* resp) override {
    if (grpc::Status s = CheckKnownFields(*req); !s.ok()) return s;
    for (const StreamSummary& s : d_.xds->Summaries()) {
      if (s.node_id != req->node_id()) continue;
      SnapshotPtr snap = d_.cache->ForNode(s.node_id, s.cluster);
      std::string out = absl::StrCat("{\"node_id\":", JsonString(s.node_id),
                                     ",\"stream_id\":", s.stream_id, ",\"resources\":{");
      bool first_type = true;
      for (const StreamSummary::Type& t : s.types) {
        if (!first_type) out.push_back(',');
        first_type = false;
        absl::StrAppend(&out, JsonString(xds::ShortName(t.type)), ":[");
        bool first = true;
        for (const std::string& name : t.sent_names) {
          const xds::Resource* r = snap->Find(t.type, name);
          if (r == nullptr) continue;
          // Whatever a proxy was sent, key material stays out of the answer (as in Envoy's
          // config dump).
          google::protobuf::Any body = r->body;
          xds::RedactSensitive(&body);
          std::string json;
          if (!google::protobuf::util::MessageToJsonString(body, &json).ok()) continue;
          if (!first) out.push_back(',');
          first = false;
          out += json;
        }
        out += "]";
      }
      out += "}}";
      resp->set_json(std::move(out));
      return grpc::Status::OK;
    }
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("no connected proxy with node id \"", req->node_id(), "\""));
  }

 private:
  // What a write asks right before it commits: is the client still there, within its deadline,
  // and has it not settled this request already (WriteTickets)?
  class Gate {
   public:
    Gate(grpc::ServerContext* ctx, WriteTickets* tickets, std::string id, std::string_view verb)
        : ctx_(ctx), tickets_(tickets), id_(std::move(id)), verb_(verb) {}
    ConfigModel::CommitGate fn() {
      return [this]() -> absl::Status {
        if (ctx_->IsCancelled()) {
          return absl::CancelledError(
              absl::StrCat("not ", Sv(verb_), ": the client went away; nothing changed"));
        }
        if (std::chrono::system_clock::now() + kCommitMargin > ctx_->deadline()) {
          return absl::DeadlineExceededError(absl::StrCat(
              "not ", Sv(verb_), ": validating took past the client's deadline; nothing changed"));
        }
        absl::Status s = tickets_->BeginCommit(id_);
        began_ = s.ok();
        return s;
      };
    }
    void Finish(bool committed, int64_t revision) {
      if (began_) tickets_->Finish(id_, committed, revision);
    }

   private:
    grpc::ServerContext* ctx_;
    WriteTickets* tickets_;
    std::string id_;
    std::string_view verb_;
    bool began_ = false;
  };

  ConfigServiceDeps d_;
  WriteTickets tickets_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewConfigService(ConfigServiceDeps deps) {
  return std::make_unique<ConfigServiceImpl>(deps);
}

}  // namespace weft::cp
