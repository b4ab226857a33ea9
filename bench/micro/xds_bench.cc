// The config path's fixed costs, per update of N clusters (each with a ClusterLoadAssignment of 10
// endpoints): decoding and validating what arrives (both programs run the same validators),
// building the control plane's immutable Snapshot, and compiling the proxy's worker config.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/proto_util.h"
#include "common/xds/resource.h"
#include "common/xds/validate.h"
#include "control-plane/cache/snapshot.h"
#include "data-plane/server/proxy_config.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"

namespace weft {
namespace {

std::vector<google::protobuf::Any> Resources(int clusters) {
  std::vector<google::protobuf::Any> out;
  for (int i = 0; i < clusters; ++i) {
    envoy::config::cluster::v3::Cluster c;
    c.set_name(absl::StrCat("svc-", i, ".default:80"));
    c.set_type(envoy::config::cluster::v3::Cluster::EDS);
    c.mutable_eds_cluster_config()->mutable_eds_config()->mutable_ads();
    c.mutable_connect_timeout()->set_seconds(1);
    out.push_back(PackAny(c));
    envoy::config::endpoint::v3::ClusterLoadAssignment cla;
    cla.set_cluster_name(c.name());
    auto* locality = cla.add_endpoints();
    locality->mutable_locality()->set_zone("z1");
    for (int j = 0; j < 10; ++j) {
      auto* sa = locality->add_lb_endpoints()
                     ->mutable_endpoint()
                     ->mutable_address()
                     ->mutable_socket_address();
      sa->set_address(absl::StrCat("10.", i / 250, ".", i % 250, ".", j));
      sa->set_port_value(8080);
    }
    out.push_back(PackAny(cla));
  }
  return out;
}

std::vector<xds::ResourcePtr> Made(const std::vector<google::protobuf::Any>& anys) {
  std::vector<xds::ResourcePtr> out;
  for (const auto& any : anys) out.push_back(*xds::MakeResource(any));
  return out;
}

void BM_DecodeValidate(benchmark::State& state) {
  auto anys = Resources(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    benchmark::DoNotOptimize(xds::ValidateResources(anys));
    benchmark::DoNotOptimize(Made(anys));
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(anys.size()));
}
BENCHMARK(BM_DecodeValidate)->Arg(10)->Arg(1000)->Unit(benchmark::kMicrosecond);

void BM_ControlPlaneSnapshotBuild(benchmark::State& state) {
  auto made = Made(Resources(static_cast<int>(state.range(0))));
  for (auto _ : state) benchmark::DoNotOptimize(cp::Snapshot::Build(made));
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(made.size()));
}
BENCHMARK(BM_ControlPlaneSnapshotBuild)->Arg(10)->Arg(1000)->Unit(benchmark::kMicrosecond);

void BM_ProxyConfigBuild(benchmark::State& state) {
  proxy::ConfigState::ResourceMap clusters, endpoints, none;
  for (const auto& r : Made(Resources(static_cast<int>(state.range(0))))) {
    (r->type == xds::ResourceType::kCluster ? clusters : endpoints)[r->name] = r;
  }
  std::vector<std::string> warnings, errors;
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        proxy::BuildProxyConfig(none, none, clusters, endpoints, 1, nullptr, &warnings, &errors));
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_ProxyConfigBuild)->Arg(10)->Arg(1000)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace weft
