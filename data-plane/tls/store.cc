#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "data-plane/tls/tls.h"

namespace weft::tls {

using envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext;
using envoy::extensions::transport_sockets::tls::v3::Secret;
using envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;

ContextStore::ContextStore(const Clock& clock) : clock_(clock), ticket_keys_(NewTicketKeys()) {}

absl::Status ContextStore::BuildLocked(Entry& e) {
  SecretLookup lookup = [this](std::string_view name) -> const Secret* {
    auto it = secrets_.find(name);
    return it == secrets_.end() ? nullptr : &it->second;
  };
  e.missing.clear();
  for (const std::string& name : e.secret_names) {
    if (!secrets_.contains(name)) e.missing.push_back(name);
  }
  if (!e.missing.empty()) return absl::OkStatus();  // pending; the previous context serves
  absl::StatusOr<ContextConfig> config = e.server ? ServerConfigFromProto(e.downstream, lookup)
                                                  : ClientConfigFromProto(e.upstream, lookup);
  if (!config.ok()) return config.status();
  absl::StatusOr<std::shared_ptr<const Context>> ctx =
      Context::Create(*config, clock_, e.server ? &ticket_keys_ : nullptr);
  if (!ctx.ok()) return ctx.status();
  e.context = *std::move(ctx);
  return absl::OkStatus();
}

absl::Status ContextStore::UpdateSecrets(const std::vector<Secret>& updated,
                                         const std::vector<std::string>& removed) {
  std::lock_guard lock(mu_);
  std::set<std::string> changed;
  for (const Secret& s : updated) {
    auto it = secrets_.find(s.name());
    if (it != secrets_.end() && it->second.SerializeAsString() == s.SerializeAsString()) continue;
    secrets_[s.name()] = s;
    changed.insert(s.name());
  }
  for (const std::string& name : removed) secrets_.erase(name);
  std::vector<std::string> failures;
  for (auto& [key, e] : entries_) {
    bool uses = std::any_of(e.secret_names.begin(), e.secret_names.end(),
                            [&](const std::string& n) { return changed.contains(n); });
    if (!uses) continue;
    if (absl::Status s = BuildLocked(e); !s.ok()) {
      failures.push_back(absl::StrCat(key, ": ", s.message()));
    }
  }
  if (failures.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("TLS contexts keep their previous secrets: ", absl::StrJoin(failures, "; ")));
}

absl::Status ContextStore::SetLocked(const std::string& key, Entry e) {
  auto it = entries_.find(key);
  if (it != entries_.end()) e.context = it->second.context;  // serves until the new one is built
  absl::Status s = BuildLocked(e);
  if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(key, ": ", s.message()));
  entries_[key] = std::move(e);
  return absl::OkStatus();
}

absl::Status ContextStore::SetServer(const std::string& key, const DownstreamTlsContext& ctx) {
  Entry e;
  e.server = true;
  e.downstream = ctx;
  e.secret_names = SecretNames(ctx.common_tls_context());
  std::lock_guard lock(mu_);
  return SetLocked(key, std::move(e));
}

absl::Status ContextStore::SetClient(const std::string& key, const UpstreamTlsContext& ctx) {
  Entry e;
  e.server = false;
  e.upstream = ctx;
  e.secret_names = SecretNames(ctx.common_tls_context());
  std::lock_guard lock(mu_);
  return SetLocked(key, std::move(e));
}

void ContextStore::Remove(const std::string& key) {
  std::lock_guard lock(mu_);
  entries_.erase(key);
}

std::shared_ptr<const Context> ContextStore::Get(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : it->second.context;
}

std::vector<std::string> ContextStore::Missing(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  return it == entries_.end() ? std::vector<std::string>{} : it->second.missing;
}

std::set<std::string> ContextStore::ReferencedSecrets() const {
  std::lock_guard lock(mu_);
  std::set<std::string> out;
  for (const auto& [key, e] : entries_) out.insert(e.secret_names.begin(), e.secret_names.end());
  return out;
}

}  // namespace weft::tls
