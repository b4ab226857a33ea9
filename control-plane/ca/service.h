// weft-cp's CA as a server: its flags, the gRPC services (weft.ca.v1) and the trust bundle to
// publish. main() needs only this header: AddCaFlags, CaServer::Start, the Register calls, and
// publishing TrustBundleSecret() to every node group.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "common/flags.h"
#include "common/xds/resource.h"
#include "control-plane/ca/ca.h"

namespace grpc {
class Service;
class ServerBuilder;
}  // namespace grpc

namespace weft::metrics {
class Registry;
}

namespace weft::ca {

struct CaFlags {
  bool enabled = true;
  std::string trust_domain = "weft";
  int64_t root_ttl_days = 3650;
  int64_t workload_ttl_seconds = 24 * 3600;
  std::string cert_file;
  std::string key_file;
  std::string bundle_file;
};
void AddCaFlags(FlagSet* flags, CaFlags* out);

class CaServer {
 public:
  // Opens (or on first start generates) the CA; nullptr when the CA is turned off (--noca).
  static absl::StatusOr<std::unique_ptr<CaServer>> Start(const CaFlags& flags, cp::Store* store,
                                                         metrics::Registry* registry);
  ~CaServer();

  // weft.ca.v1.CertificateService where proxies connect (the xDS port), TokenService where
  // operators do (the config API port). This object must outlive the servers built.
  void RegisterProxyServices(grpc::ServerBuilder* builder);
  void RegisterOperatorServices(grpc::ServerBuilder* builder);
  xds::ResourcePtr TrustBundleSecret() const { return authority_->TrustBundleSecret(); }
  const Authority& authority() const { return *authority_; }

 private:
  CaServer() = default;
  std::unique_ptr<Authority> authority_;
  std::unique_ptr<grpc::Service> certificates_;
  std::unique_ptr<grpc::Service> tokens_;
};

}  // namespace weft::ca
