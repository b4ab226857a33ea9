// `weftctl token create|list|revoke`: bootstrap tokens over weft.ca.v1.TokenService. Kept here,
// next to the CA, so weftctl only registers the flags and dispatches.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/flags.h"

namespace grpc {
class Channel;
}

namespace weft::ca {

struct TokenCliFlags {
  std::string ns;
  std::string service_account;
  std::string ttl;  // "24h", "90m", "0" (never)
  std::string description;
  bool all = false;  // list: revoked tokens too
};
void AddTokenFlags(FlagSet* flags, TokenCliFlags* out);

// `args` starts with "token". `node` binds a created token to one node id ("" = any node).
// Exit codes as weftctl's: 0 ok, 1 refused, 2 usage, 4 RPC error. `create` prints the token
// alone on stdout (TOKEN=$(weftctl token create ...)) and what it grants on stderr.
int RunTokenCommand(const std::vector<std::string>& args, const TokenCliFlags& flags,
                    const std::string& node, const std::shared_ptr<grpc::Channel>& channel,
                    std::chrono::milliseconds rpc_timeout);

// The usage lines weftctl adds to its help.
inline constexpr char kTokenUsage[] =
    "  token create --namespace NS --service-account SA [--node ID] [--ttl 24h]\n"
    "                                            a bootstrap token for proxies (printed once)\n"
    "  token list [--all]                        tokens (--all: revoked ones too)\n"
    "  token revoke ID                           revoke a token\n";

}  // namespace weft::ca
