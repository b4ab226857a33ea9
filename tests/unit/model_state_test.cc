// The incremental model (control-plane/model/model_state.h) against translating from scratch:
// after any sequence of changes — accepted, refused, or applied and undone as a dry run — the
// resources, their versions, the errors and the sum of the published deltas equal a fresh
// translation of the same objects.
#include "control-plane/model/model_state.h"

#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/strings.h"
#include "common/validation.h"
#include "common/xds/validate.h"

namespace weft::cp {
namespace {

namespace cfg = ::weft::config::v1;

// scope -> "type/name" -> version: what a publisher fed the deltas would hold.
using Served = std::map<std::string, std::map<std::string, std::string>>;

std::string Key(const xds::Resource& r) {
  return absl::StrCat(Sv(xds::ShortName(r.type)), "/", r.name);
}

Served ServedOf(const Translation& t) {
  Served out;
  for (const auto& r : t.shared) out[""][Key(*r)] = r->version_text;
  for (const auto& [g, rs] : t.per_group) {
    for (const auto& r : rs) out[g][Key(*r)] = r->version_text;
  }
  return out;
}

void ApplyDelta(const ResourceDelta& d, Served* served) {
  for (const auto& [scope, changes] : d.scopes) {
    auto& m = (*served)[scope];
    for (const auto& [type, name] : changes.removals) {
      m.erase(absl::StrCat(Sv(xds::ShortName(type)), "/", name));
    }
    for (const auto& r : changes.upserts) m[Key(*r)] = r->version_text;
    if (m.empty()) served->erase(scope);
  }
}

std::string Show(const Served& s) {
  std::string out;
  for (const auto& [scope, m] : s) {
    absl::StrAppend(&out, "[", scope, "]\n");
    for (const auto& [k, v] : m) absl::StrAppend(&out, "  ", k, " ", v, "\n");
  }
  return out;
}

// A small universe so that changes collide: few names, few namespaces, references that
// sometimes dangle, values that are sometimes invalid.
class Generator {
 public:
  explicit Generator(uint32_t seed) : rng_(seed) {}

  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  bool Chance(int percent) { return Pick(100) < percent; }

  std::string Ns() { return Chance(70) ? "" : "prod"; }
  std::string ServiceName() { return absl::StrCat("s", Pick(6)); }

  cfg::ConfigObject Service(const std::string& name, const std::string& ns) {
    cfg::ConfigObject o;
    auto* s = o.mutable_service();
    s->set_name(name);
    s->set_namespace_(ns);
    int ports = Chance(20) ? 2 : 1;
    for (int i = 0; i < ports; ++i) {
      auto* p = s->add_ports();
      p->set_port(i == 0 ? (Chance(80) ? 8080 : 9090) : 7070);
      if (Chance(30)) p->set_protocol(cfg::ServicePort::GRPC);
      if (Chance(2)) p->set_protocol(cfg::ServicePort::TCP);  // refused
    }
    int endpoints = Pick(4);
    for (int i = 0; i < endpoints; ++i) {
      auto* e = s->add_endpoints();
      e->set_address(absl::StrCat("10.0.", Pick(3), ".", Pick(3) + 1));
      e->set_port(8000 + Pick(3));
      if (ports > 1) e->set_service_port(Chance(50) ? s->ports(0).port() : 7070);
      if (Chance(30)) e->set_weight(1 + Pick(3));
      if (Chance(20)) e->set_zone(absl::StrCat("z", Pick(2)));
    }
    return o;
  }

  // The same service with other endpoints only: the shortest path.
  cfg::ConfigObject MoveEndpoints(const cfg::ConfigObject& o) {
    cfg::ConfigObject out = o;
    auto* s = out.mutable_service();
    s->clear_endpoints();
    int endpoints = 1 + Pick(3);
    for (int i = 0; i < endpoints; ++i) {
      auto* e = s->add_endpoints();
      e->set_address(absl::StrCat("10.1.", Pick(3), ".", i + 1));
      e->set_port(8000 + Pick(5));
      if (s->ports_size() > 1) e->set_service_port(s->ports(Pick(s->ports_size())).port());
      if (Chance(5)) e->set_priority(2);  // a gap: refused
    }
    return out;
  }

  std::string Host(const std::string& route_ns) {
    switch (Pick(8)) {
      case 0:
        return "api.example.com";
      case 1:
        return "*.example.com";
      case 2:
        return absl::StrCat(ServiceName(), ".default");
      case 3:
        return absl::StrCat(ServiceName(), ".prod:8080");
      case 4:
        return absl::StrCat(ServiceName(), ":", Chance(70) ? 8080 : 9090);
      case 5:
        return "S1.default";  // a foreign host whose domain clashes with service s1's
      default:
        return ServiceName();
    }
  }

  cfg::ConfigObject Route(const std::string& name, const std::string& ns) {
    cfg::ConfigObject o;
    auto* r = o.mutable_route();
    r->set_name(name);
    r->set_namespace_(ns);
    int hosts = 1 + Pick(2);
    for (int i = 0; i < hosts; ++i) {
      std::string h = Host(ns);
      if (std::find(r->hosts().begin(), r->hosts().end(), h) == r->hosts().end()) r->add_hosts(h);
    }
    int rules = 1 + Pick(2);
    for (int i = 0; i < rules; ++i) {
      auto* rule = r->add_rules();
      if (Chance(50)) rule->mutable_match()->mutable_path()->set_prefix(absl::StrCat("/p", i, "/"));
      if (Chance(5)) rule->mutable_match()->mutable_path()->set_regex("/v[0-9+");  // refused
      if (Chance(15)) {
        rule->mutable_direct_response()->set_status(200 + Pick(3));
        continue;
      }
      int dests = 1 + Pick(2);
      for (int j = 0; j < dests; ++j) {
        auto* d = rule->add_destinations();
        d->set_service(ServiceName());
        if (Chance(20)) d->set_port(8080);
        if (dests > 1) d->set_weight(1 + Pick(9));
      }
      if (Chance(30)) rule->mutable_timeout()->set_seconds(1 + Pick(3));
    }
    return o;
  }

  cfg::ConfigObject Policy(const std::string& name, const std::string& ns) {
    cfg::ConfigObject o;
    auto* p = o.mutable_policy();
    p->set_name(name);
    p->set_namespace_(ns);
    p->set_service(ServiceName());
    if (Chance(50)) {
      p->mutable_lb()->set_algorithm(cfg::LoadBalancer::RING_HASH);
      p->mutable_lb()->mutable_hash_on()->set_header("x-user");
    } else {
      p->mutable_lb()->set_algorithm(cfg::LoadBalancer::LEAST_REQUEST);
    }
    if (Chance(30)) p->mutable_connect_timeout()->set_seconds(1 + Pick(5));
    return o;
  }

  cfg::ConfigObject AuthorizationPolicy(const std::string& name, const std::string& ns) {
    cfg::ConfigObject o;
    auto* a = o.mutable_authorization_policy();
    a->set_name(name);
    a->set_namespace_(ns);
    a->set_service(ServiceName());
    a->add_rules()->mutable_to()->add_methods("GET");
    return o;
  }

  // One change against `current`: a new or edited object, an endpoint move, or a delete.
  std::pair<std::string, std::shared_ptr<const cfg::ConfigObject>> Change(
      const std::map<std::string, ModelState::ObjectPtr>& current) {
    if (!current.empty() && Chance(35)) {
      auto it = current.begin();
      std::advance(it, Pick(static_cast<int>(current.size())));
      if (Chance(40)) return {it->first, nullptr};
      if (it->second->has_service() && Chance(70)) {
        return {it->first, std::make_shared<const cfg::ConfigObject>(MoveEndpoints(*it->second))};
      }
    }
    std::string ns = Ns();
    cfg::ConfigObject o;
    int kind = Pick(100);
    if (kind < 50) {
      o = Service(ServiceName(), ns);
    } else if (kind < 78) {
      o = Route(absl::StrCat("r", Pick(4)), ns);
    } else if (kind < 97) {
      o = Policy(absl::StrCat("p", Pick(4)), ns);
    } else {
      o = AuthorizationPolicy("a0", ns);  // refused while weft-proxy enforces no RBAC
    }
    return {ObjectKey(o), std::make_shared<const cfg::ConfigObject>(std::move(o))};
  }

 private:
  std::mt19937 rng_;
};

// What does not rest on the engine agreeing with itself: every resource of a valid state passes
// the proxy's validators, and its name, version and dependencies are what packing its body
// anew gives (the outbound table is assembled from serialized pieces, not packed).
void CheckServable(const Translation& t) {
  std::vector<xds::ResourcePtr> all = t.shared;
  for (const auto& [g, rs] : t.per_group) all.insert(all.end(), rs.begin(), rs.end());
  for (const xds::ResourcePtr& r : all) {
    INFO(Key(*r));
    ValidationErrors errors;
    xds::ValidateResource(r->body, &errors);
    CHECK(errors.errors() == std::vector<std::string>{});
    absl::StatusOr<xds::ResourcePtr> again = xds::MakeResource(r->body);
    REQUIRE(again.ok());
    CHECK((*again)->name == r->name);
    CHECK((*again)->version == r->version);
    CHECK((*again)->dependencies == r->dependencies);
  }
}

// Translates `objects` from scratch; errors as ModelState reports them.
std::pair<std::vector<std::string>, Served> Fresh(
    const std::map<std::string, ModelState::ObjectPtr>& objects) {
  ModelState fresh;
  std::vector<ModelState::Change> changes;
  for (const auto& [k, o] : objects) changes.push_back({k, o});
  ModelState::Result r = fresh.Apply(std::move(changes));
  return {r.errors, ServedOf(fresh.Resources())};
}

TEST_CASE("ModelState: any sequence of incremental changes equals a translation from scratch",
          "[model][incremental]") {
  for (uint32_t seed : {1u, 2u, 3u, 4u, 5u, 6u, 7u, 8u}) {
    INFO("seed " << seed);
    Generator gen(seed);
    ModelState state;
    Served served;  // what the deltas built
    size_t accepted = 0, refused = 0, endpoint_only = 0;
    for (int step = 0; step < 250; ++step) {
      INFO("step " << step);
      std::map<std::string, ModelState::ObjectPtr> next = state.objects();
      std::vector<ModelState::Change> changes;
      int n = 1 + gen.Pick(3);
      for (int i = 0; i < n; ++i) {
        auto [key, object] = gen.Change(next);
        bool dup = false;
        for (const auto& c : changes) dup |= c.key == key;
        if (dup) continue;
        changes.push_back({key, object});
        if (object == nullptr) {
          next.erase(key);
        } else {
          next[key] = object;
        }
      }
      const Served before = ServedOf(state.Resources());
      ModelState::Result r = state.Apply(changes);
      auto [fresh_errors, fresh_served] = Fresh(next);
      INFO("changes: " << [&] {
        std::vector<std::string> keys;
        for (const auto& c : changes) keys.push_back(c.key + (c.object ? "" : " (deleted)"));
        return absl::StrJoin(keys, ", ");
      }());
      REQUIRE(r.errors == fresh_errors);
      const bool dry_run = r.ok() && gen.Chance(10);
      if (!r.ok() || dry_run) {
        // As the config model does for a refused change or a dry run: put the objects back.
        ModelState::Result undone = state.Apply(r.undo);
        if (!r.ok()) ++refused;
        REQUIRE(ServedOf(state.Resources()) == before);
        // Neither delta was published: the engine is back to what the publisher serves, so
        // the next delta applies to it.
        if (undone.ok()) REQUIRE(ServedOf(state.Resources()) == served);
        continue;
      }
      ++accepted;
      endpoint_only += r.endpoint_only;
      ApplyDelta(r.delta, &served);
      INFO("incremental:\n"
           << Show(ServedOf(state.Resources())) << "from scratch:\n"
           << Show(fresh_served) << "from the deltas:\n"
           << Show(served));
      REQUIRE(ServedOf(state.Resources()) == fresh_served);
      REQUIRE(served == fresh_served);
      CheckServable(state.Resources());
    }
    // The generator must exercise every path.
    CHECK(accepted > 50);
    CHECK(refused > 10);
    CHECK(endpoint_only > 5);
  }
}

std::shared_ptr<const cfg::ConfigObject> Obj(cfg::ConfigObject o) {
  return std::make_shared<const cfg::ConfigObject>(std::move(o));
}

TEST_CASE("ModelState: a change publishes exactly the resources whose content changed",
          "[model][incremental]") {
  Generator gen(42);
  ModelState state;
  std::vector<ModelState::Change> mesh;
  for (int i = 0; i < 50; ++i) {
    cfg::ConfigObject o;
    auto* s = o.mutable_service();
    s->set_name(absl::StrCat("svc-", i));
    s->add_ports()->set_port(8080);
    auto* e = s->add_endpoints();
    e->set_address("10.0.0.1");
    e->set_port(8000 + i);
    mesh.push_back({ObjectKey(o), Obj(o)});
  }
  REQUIRE(state.Apply(mesh).ok());

  // An endpoint move: one ClusterLoadAssignment, nothing else validated or translated.
  cfg::ConfigObject moved = *mesh[7].object;
  moved.mutable_service()->mutable_endpoints(0)->set_port(9999);
  ModelState::Result r = state.Apply({{mesh[7].key, Obj(moved)}});
  REQUIRE(r.ok());
  CHECK(r.validated == 1);
  CHECK(r.services == 0);
  CHECK(r.endpoint_only == 1);
  CHECK_FALSE(r.outbound);
  REQUIRE(r.delta.scopes.size() == 1);
  const auto& shared = r.delta.scopes.at("");
  REQUIRE(shared.upserts.size() == 1);
  CHECK(shared.upserts[0]->type == xds::ResourceType::kEndpoint);
  CHECK(shared.upserts[0]->name == "svc-7.default:8080");
  CHECK(shared.removals.empty());

  // A Policy: that service's cluster and the outbound routes (hash policy) change; its other
  // resources (listeners, endpoints, inbound) and every other service stay.
  cfg::ConfigObject policy;
  policy.mutable_policy()->set_name("p");
  policy.mutable_policy()->set_service("svc-3");
  policy.mutable_policy()->mutable_lb()->set_algorithm(cfg::LoadBalancer::RING_HASH);
  policy.mutable_policy()->mutable_lb()->mutable_hash_on()->set_header("x-user");
  r = state.Apply({{ObjectKey(policy), Obj(policy)}});
  REQUIRE(r.ok());
  CHECK(r.services == 1);
  std::vector<std::string> names;
  for (const auto& u : r.delta.scopes.at("").upserts) names.push_back(Key(*u));
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"cluster/svc-3.default:8080", "route/outbound_http",
                                          "route/svc-3", "route/svc-3.default",
                                          "route/svc-3.default:8080", "route/svc-3:8080"});

  // Applying the same objects again changes nothing.
  std::vector<ModelState::Change> same;
  for (const auto& [key, o] : state.objects()) same.push_back({key, Obj(*o)});
  r = state.Apply(same);
  REQUIRE(r.ok());
  CHECK(r.delta.empty());

  // A delete removes what the service made, every scope included.
  r = state.Apply({{mesh[0].key, nullptr}});
  REQUIRE(r.ok());
  size_t removals = 0;
  for (const auto& [scope, changes] : r.delta.scopes) removals += changes.removals.size();
  CHECK(removals == 2 + 4 + 4 + 2 * 2);  // cluster, CLA; 4 listeners, 4 routes; inbound x 2 groups
  CHECK(r.delta.scopes.contains("svc-0"));
  CHECK(r.delta.scopes.contains("svc-0.default"));
}

}  // namespace
}  // namespace weft::cp
