// Shared pieces of the weft-cp e2e tests: resource snippets in Envoy's filesystem format, a
// fixture that owns a config dir and a weft-cp process, and a Catch listener that prints the
// server's log when a test fails (the log is usually the fastest way to see why).
#pragma once

#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "google/protobuf/struct.pb.h"
#include "tests/support/process.h"

namespace weft::test {

inline constexpr std::string_view kCds = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
inline constexpr std::string_view kEds =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
inline constexpr std::string_view kLds = "type.googleapis.com/envoy.config.listener.v3.Listener";
inline constexpr std::string_view kRds =
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

// One resource each, as a JSON object (valid YAML flow mapping). `variant` changes the content
// (and so the version) without changing the name.
std::string ClusterRes(std::string_view name, int variant = 1);
std::string ClaRes(std::string_view cluster, const std::vector<int>& ports,
                   std::string_view zone = "z1");
std::string ListenerRes(std::string_view name, std::string_view route, int port = 10000);
std::string RouteRes(std::string_view name, std::string_view cluster,
                     std::string_view prefix = "/");
// A DiscoveryResponse document holding `resources`.
std::string ResourcesFile(const std::vector<std::string>& resources);

// Set by the listener in e2e_util.cc when any assertion of the running test case fails.
bool CurrentTestFailed();

// A config dir plus a weft-cp serving it. Start() after writing the initial files.
class CpFixture {
 public:
  CpFixture();
  ~CpFixture();
  void Write(std::string_view file, std::string_view contents);
  void Remove(std::string_view file);
  void Start(const std::vector<std::string>& extra_args = {});
  int xds_port() const { return cp_.xds_port; }
  int admin_port() const { return cp_.admin_port; }
  const std::string& config_dir() const { return config_.path(); }
  std::string Log() const { return cp_.process ? cp_.process->Log() : std::string(); }
  std::string LogTail() const { return cp_.LogTail(); }
  bool Running() const { return cp_.process && cp_.process->Running(); }
  // SIGKILLs weft-cp and reaps it (a control-plane crash, as proxies see it).
  void Kill() {
    if (cp_.process) {
      cp_.process->Kill(9);
      cp_.process->Wait(std::chrono::seconds(5));
    }
  }
  // GET on the admin port; REQUIREs a 200 and (for the JSON ones) valid JSON.
  std::string Get(std::string_view path);
  google::protobuf::Struct GetJson(std::string_view path);
  // A metric sample, or -1 when absent.
  double Metric(std::string_view name, const std::map<std::string, std::string>& labels = {});

 private:
  TempDir config_;
  WeftCp cp_;
};

}  // namespace weft::test
