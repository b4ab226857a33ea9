// weft.config.v1.ConfigService over gRPC: what `weftctl` talks to.
#pragma once

#include <memory>

namespace grpc {
class Service;
}

namespace weft::cp {

class ConfigModel;
class Publisher;
class SnapshotCache;
class Store;
class XdsServer;

struct ConfigServiceDeps {
  ConfigModel* model = nullptr;
  Store* store = nullptr;
  Publisher* publisher = nullptr;
  const SnapshotCache* cache = nullptr;
  const XdsServer* xds = nullptr;
};

std::unique_ptr<grpc::Service> NewConfigService(ConfigServiceDeps deps);

}  // namespace weft::cp
