#include "control-plane/sources/config_dir.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "common/proto_util.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/validation.h"
#include "common/xds/sensitive.h"
#include "common/xds/validate.h"
#include "common/yaml_proto.h"
#include "control-plane/model/model.h"
#include "envoy/service/discovery/v3/discovery.pb.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace weft::cp {
namespace {

namespace fs = std::filesystem;
using envoy::service::discovery::v3::DiscoveryResponse;

// Editors and ConfigMap updates arrive as bursts of events; rescanning once the burst is over
// avoids parsing half-written files. The cap keeps a file rewritten in a loop from starving us.
// Short, because a rescan only rereads what changed and the publisher debounces again.
constexpr int kQuietMs = 20;
constexpr int kMaxDebounceMs = 1000;
// inotify can overflow or miss a directory created between scans; a slow periodic rescan makes
// the result converge anyway (and is the only mechanism if inotify is unavailable).
constexpr int kResyncMs = 5000;
// Rescans reread only files that an event named or whose stat() changed; every this many
// periodic rescans, every file is reread regardless, in case a rewrite kept size and a coarse
// timestamp and its event was lost.
constexpr int kFullRereadEvery = 12;

bool IsConfigFile(const std::string& name) {
  if (name.empty() || name[0] == '.' || name[0] == '#' || name.back() == '~') return false;
  for (std::string_view ext : {".yaml", ".yml", ".json"}) {
    if (name.size() > ext.size() && name.compare(name.size() - ext.size(), ext.size(), ext) == 0) {
      return true;
    }
  }
  return false;
}

using ResourceKey = std::pair<xds::ResourceType, std::string>;

// A document's `node_groups`: Weft's own key next to Envoy's `resources`.
constexpr std::string_view kNodeGroups = "node_groups";

// A resource and the node groups it is scoped to (none: every node).
struct Scoped {
  xds::ResourcePtr resource;
  std::vector<std::string> groups;
};

// One resource from a file, with where it came from for error messages.
struct Item {
  Scoped scoped;
  int line = 0;
  std::string path;  // "resources[3].name"
};

// What a file's current content parsed into. Cached by content hash so unchanged files are not
// re-parsed on every event.
struct ParsedFile {
  uint64_t hash = 0;
  std::vector<std::string> errors;  // each "file:line: path: problem"
  std::vector<Item> items;
  std::vector<std::shared_ptr<const config::v1::ConfigObject>> objects;
};

// What stat() says about a file; a rewrite (in place or by rename) changes at least ctime.
struct FileStamp {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = -1;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};

std::optional<FileStamp> StatFile(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return std::nullopt;
  FileStamp out;
  out.dev = st.st_dev;
  out.ino = st.st_ino;
  out.size = st.st_size;
  out.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  out.ctime_ns = int64_t{st.st_ctim.tv_sec} * 1000000000 + st.st_ctim.tv_nsec;
  return out;
}

struct FileEntry {
  std::optional<FileStamp> stamp;  // when the content in `parsed` was read
  ParsedFile parsed;
  std::vector<Scoped> last_good;
  std::vector<std::shared_ptr<const config::v1::ConfigObject>> last_good_objects;
  std::string logged_status;  // what we last logged, so steady state stays quiet
  bool fresh = true;          // parsed since the last time we logged
};

std::string DocumentKindError(const YamlDocument& doc) {
  return absl::StrCat(doc.source, ":", doc.line,
                      ": expected a DiscoveryResponse with \"resources\" (or a Weft document "
                      "with \"kind\")");
}

// Validation errors read "resources[3].x.y: problem"; point them at the line of the deepest
// part of that path the YAML knows about.
std::string LocateError(const YamlDocument& doc, const std::string& error) {
  size_t colon = error.find(": ");
  std::string_view path =
      colon == std::string::npos ? std::string_view() : std::string_view(error).substr(0, colon);
  return absl::StrCat(doc.source, ":", doc.LineOf(path), ": ", error);
}

// Reads and strips `node_groups`: a list of node group names (snapshot_cache.h) the document's
// resources are served to instead of every node.
absl::StatusOr<std::vector<std::string>> TakeNodeGroups(YamlDocument* doc) {
  std::vector<std::string> groups;
  if (!doc->top_ranges.contains(kNodeGroups)) return groups;
  const std::string where =
      absl::StrCat(doc->source, ":", doc->LineOf(kNodeGroups), ": ", Sv(kNodeGroups), ": ");
  google::protobuf::Struct parsed;
  if (!google::protobuf::util::JsonStringToMessage(doc->json, &parsed).ok() ||
      !parsed.fields().contains(std::string(kNodeGroups)) ||
      !parsed.fields().at(std::string(kNodeGroups)).has_list_value()) {
    return absl::InvalidArgumentError(absl::StrCat(where, "must be a list of node group names"));
  }
  for (const auto& v : parsed.fields().at(std::string(kNodeGroups)).list_value().values()) {
    if (!v.has_string_value() || v.string_value().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, "must be a list of node group names"));
    }
    // The default group is every node that has no group of its own: scoping to it scopes
    // nothing.
    if (v.string_value() == "default") {
      return absl::InvalidArgumentError(
          absl::StrCat(where,
                       "\"default\" is every node without a group of its own; leave "
                       "node_groups out to serve every node"));
    }
    groups.push_back(v.string_value());
  }
  std::sort(groups.begin(), groups.end());
  groups.erase(std::unique(groups.begin(), groups.end()), groups.end());
  if (groups.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, "must name at least one node group"));
  }
  doc->json = doc->JsonWithout(kNodeGroups);
  return groups;
}

void ParseDocument(const YamlDocument& doc, const ConfigDirOptions& options, ParsedFile* out,
                   std::map<ResourceKey, std::string>* seen) {
  if (doc.empty) return;
  // A top-level `kind` marks Weft's own schema.
  if (doc.is_map && doc.lines.contains("kind")) {
    auto objects = ParseConfigDocuments({doc});
    if (!objects.ok()) {
      out->errors.emplace_back(objects.status().message().data(),
                               objects.status().message().size());
      return;
    }
    for (auto& o : *objects) {
      out->objects.push_back(std::make_shared<const config::v1::ConfigObject>(std::move(o)));
    }
    return;
  }
  if (!doc.is_map || !doc.lines.contains("resources")) {
    out->errors.push_back(DocumentKindError(doc));
    return;
  }
  YamlDocument stripped = doc;
  absl::StatusOr<std::vector<std::string>> groups = TakeNodeGroups(&stripped);
  if (!groups.ok()) {
    out->errors.emplace_back(groups.status().message().data(), groups.status().message().size());
    return;
  }
  DiscoveryResponse response;
  absl::Status parsed = YamlDocumentToProto(stripped, &response);
  if (!parsed.ok()) {
    // Already "source:line: full.path: problem" (see YamlDocumentToProto).
    out->errors.emplace_back(parsed.message().data(), parsed.message().size());
    return;
  }
  for (int i = 0; i < response.resources_size(); ++i) {
    const google::protobuf::Any& any = response.resources(i);
    std::string at = absl::StrCat("resources[", i, "]");
    ValidationErrors errors;
    {
      ValidationErrors::Scope scope(&errors, at);
      if (!response.type_url().empty() && any.type_url() != response.type_url()) {
        errors.Add(absl::StrCat("type \"", any.type_url(), "\" differs from type_url \"",
                                response.type_url(), "\""));
      }
      xds::ValidateResource(any, &errors);
      // Node identities are not authenticated yet: whoever names a node id or cluster gets that
      // node's resources. Key material goes only where an operator scoped it, and only when
      // they said so for local development.
      for (const std::string& path : xds::InlineKeyMaterial(any)) {
        if (groups->empty()) {
          errors.AddAt(path,
                       "holds an inline private key (or other key material); weft-cp serves it "
                       "only to the node groups its document names in node_groups, and only "
                       "with --insecure-serve-private-keys");
        } else if (!options.serve_inline_keys) {
          errors.AddAt(path,
                       "holds an inline private key (or other key material), served only with "
                       "--insecure-serve-private-keys (local development: node identities are "
                       "not authenticated, any client naming the node group would get it)");
        }
      }
    }
    if (!errors.ok()) {
      for (const std::string& e : errors.errors()) out->errors.push_back(LocateError(doc, e));
      continue;
    }
    absl::StatusOr<xds::ResourcePtr> resource = xds::MakeResource(any);
    if (!resource.ok()) {
      out->errors.push_back(LocateError(doc, absl::StrCat(at, ": ", resource.status().message())));
      continue;
    }
    const xds::Resource& r = **resource;
    std::string name_path =
        absl::StrCat(at, r.type == xds::ResourceType::kEndpoint ? ".cluster_name" : ".name");
    int line = doc.LineOf(name_path);
    std::string here = absl::StrCat(doc.source, ":", line);
    auto [it, inserted] = seen->emplace(ResourceKey(r.type, r.name), here);
    if (!inserted) {
      out->errors.push_back(absl::StrCat(here, ": ", name_path, ": duplicate ",
                                         Sv(xds::ShortName(r.type)), " name \"", r.name,
                                         "\" (first at ", it->second, ")"));
      continue;
    }
    out->items.push_back(Item{Scoped{*resource, *groups}, line, name_path});
  }
}

ParsedFile ParseFile(const std::string& path, const std::string& content,
                     const ConfigDirOptions& options) {
  ParsedFile out;
  out.hash = StableHash64(content);
  absl::StatusOr<std::vector<YamlDocument>> docs = ParseYamlDocuments(content, path);
  if (!docs.ok()) {
    out.errors.emplace_back(docs.status().message().data(), docs.status().message().size());
    return out;
  }
  std::map<ResourceKey, std::string> seen;
  for (const YamlDocument& doc : *docs) ParseDocument(doc, options, &out, &seen);
  return out;
}

class ConfigDirSourceImpl : public ConfigDirSource {
 public:
  ConfigDirSourceImpl(std::string dir, Callback on_change, ConfigDirOptions options)
      : dir_(std::move(dir)), on_change_(std::move(on_change)), options_(options) {}

  ~ConfigDirSourceImpl() override {
    if (thread_.joinable()) {
      uint64_t one = 1;
      // eventfd writes of 8 bytes cannot be partial; a failure would mean a bad fd.
      [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
      thread_.join();
    }
    if (inotify_fd_ >= 0) close(inotify_fd_);
    if (wake_fd_ >= 0) close(wake_fd_);
  }

  absl::Status Start() {
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) return absl::InternalError("config dir: eventfd failed");
    inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (inotify_fd_ < 0) {
      WEFT_LOG(kWarning) << "config dir " << dir_ << ": inotify unavailable, rescanning every "
                         << kResyncMs << " ms";
    }
    Rescan(/*notify=*/false, /*reread_all=*/true);
    thread_ = std::thread([this] { Run(); });
    return absl::OkStatus();
  }

  ConfigDirState Current() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return state_;
  }

 private:
  void Run() {
    while (true) {
      pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
      int nfds = inotify_fd_ >= 0 ? 2 : 1;
      int ready = poll(fds, nfds, kResyncMs);
      if (ready < 0) {
        if (errno == EINTR) continue;
        WEFT_LOG(kError) << "config dir " << dir_ << ": poll failed, watcher stops";
        return;
      }
      if (fds[0].revents != 0) return;
      bool reread_all = false;
      if (ready > 0) {
        if (!Debounce()) return;
      } else {
        reread_all = ++quiet_rescans_ % kFullRereadEvery == 0;
      }
      Rescan(/*notify=*/true, reread_all);
    }
  }

  // Notes which files the events name, so a rescan rereads those even if stat() looks the same.
  void DrainInotify() {
    alignas(inotify_event) char buf[8192];
    ssize_t n;
    while ((n = read(inotify_fd_, buf, sizeof(buf))) > 0) {
      for (char* p = buf; p < buf + n;) {
        const auto* ev = reinterpret_cast<const inotify_event*>(p);
        p += sizeof(inotify_event) + ev->len;
        if (ev->mask & IN_Q_OVERFLOW) {
          overflowed_ = true;
          continue;
        }
        auto dir = watch_dirs_.find(ev->wd);
        if (ev->len == 0 || dir == watch_dirs_.end()) continue;
        touched_.insert((fs::path(dir->second) / ev->name).string());
      }
    }
  }

  // Waits until no event arrived for kQuietMs. Returns false when asked to stop.
  bool Debounce() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kMaxDebounceMs);
    DrainInotify();
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
      int ready = poll(fds, 2, kQuietMs);
      if (ready < 0 && errno != EINTR) return true;
      if (fds[0].revents != 0) return false;
      if (ready == 0) return true;
      DrainInotify();
    }
    return true;
  }

  void Watch(const std::string& dir) {
    if (inotify_fd_ < 0) return;
    // Re-adding an existing watch is a no-op; the kernel drops watches of deleted directories.
    constexpr uint32_t kMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
                               IN_CREATE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;
    int wd = inotify_add_watch(inotify_fd_, dir.c_str(), kMask);
    if (wd < 0) {
      WEFT_LOG(kWarning) << "config dir: cannot watch " << dir;
      return;
    }
    watch_dirs_[wd] = dir;
  }

  // Lists config files (sorted) and watches every visible directory. nullopt when the root
  // itself cannot be read: better to keep serving than to drop everything on a transient error.
  std::optional<std::vector<std::string>> ListFiles() {
    std::error_code ec;
    if (!fs::is_directory(dir_, ec)) return std::nullopt;
    Watch(dir_);
    std::vector<std::string> files;
    fs::recursive_directory_iterator it(dir_, ec), end;
    if (ec) return std::nullopt;
    for (; it != end; it.increment(ec)) {
      if (ec) break;
      const fs::directory_entry& entry = *it;
      std::string name = entry.path().filename().string();
      if (entry.is_directory(ec)) {
        // Hidden directories include Kubernetes' ..data/..<timestamp>; the files reach us
        // through the visible symlinks instead.
        if (name.empty() || name[0] == '.') {
          it.disable_recursion_pending();
        } else {
          Watch(entry.path().string());
        }
        continue;
      }
      if (IsConfigFile(name) && entry.is_regular_file(ec)) files.push_back(entry.path().string());
    }
    std::sort(files.begin(), files.end());
    return files;
  }

  // Lists the tree and rereads what may have changed: new files, files an event named, files
  // whose stat() differs, all of them when `reread_all` or after an inotify overflow. With one
  // file edited among thousands, that is one read instead of thousands.
  void Rescan(bool notify, bool reread_all) {
    std::optional<std::vector<std::string>> files = ListFiles();
    if (!files) {
      WEFT_LOG(kError) << "config dir " << dir_ << ": cannot list; keeping current resources";
      return;
    }
    reread_all = reread_all || overflowed_;
    overflowed_ = false;
    std::set<std::string> touched;
    touched.swap(touched_);
    std::map<std::string, FileEntry> next;
    for (const std::string& path : *files) {
      auto old = files_.find(path);
      std::optional<FileStamp> stamp = StatFile(path);
      if (old != files_.end() && !reread_all && stamp && old->second.stamp == stamp &&
          !touched.contains(path)) {
        next.emplace(path, std::move(old->second));
        continue;
      }
      absl::StatusOr<std::string> content = ReadFile(path);
      if (!content.ok() && absl::IsNotFound(content.status())) continue;  // raced a delete
      FileEntry entry;
      if (old != files_.end()) entry = std::move(old->second);
      // Stamped before the read finished: a write racing the read shows as a change next time.
      entry.stamp = content.ok() ? stamp : std::nullopt;
      if (!content.ok()) {
        std::string error(content.status().message().data(), content.status().message().size());
        if (entry.parsed.errors != std::vector<std::string>{error}) {
          entry.parsed = ParsedFile{};
          entry.parsed.errors.push_back(std::move(error));
          entry.fresh = true;
        }
      } else if (old == files_.end() || entry.parsed.hash != StableHash64(*content)) {
        entry.parsed = ParseFile(path, *content, options_);
        entry.fresh = true;
      }
      next.emplace(path, std::move(entry));
    }
    for (const auto& [path, entry] : files_) {
      if (!next.contains(path)) WEFT_LOG(kInfo) << "config dir: " << path << " removed";
    }
    files_ = std::move(next);
    Publish(notify);
  }

  // Decides which files are accepted, in sorted path order so a duplicate name is always
  // blamed on the same (later) file, and publishes the result when it differs.
  void Publish(bool notify) {
    ConfigDirState next;
    std::map<ResourceKey, std::string> claimed;  // -> file that serves it
    for (auto& [path, entry] : files_) {
      std::vector<std::string> errors = entry.parsed.errors;
      if (errors.empty()) {
        for (const Item& item : entry.parsed.items) {
          const xds::Resource& r = *item.scoped.resource;
          auto it = claimed.find(ResourceKey(r.type, r.name));
          if (it != claimed.end()) {
            errors.push_back(absl::StrCat(path, ":", item.line, ": ", item.path, ": duplicate ",
                                          Sv(xds::ShortName(r.type)), " name \"", r.name,
                                          "\" (already defined in ", it->second, ")"));
          }
        }
      }
      std::string status;
      if (errors.empty()) {
        entry.last_good.clear();
        for (const Item& item : entry.parsed.items) entry.last_good.push_back(item.scoped);
        entry.last_good_objects = entry.parsed.objects;
      } else {
        // One broken file can produce hundreds of errors; the first few are what helps.
        constexpr size_t kMaxErrors = 20;
        size_t extra = errors.size() > kMaxErrors ? errors.size() - kMaxErrors : 0;
        errors.resize(errors.size() - extra);
        status = absl::StrJoin(errors, "; ");
        if (extra > 0) absl::StrAppend(&status, "; and ", extra, " more errors");
        next.errors.push_back(ConfigFileError{path, status});
      }
      next.objects.insert(next.objects.end(), entry.last_good_objects.begin(),
                          entry.last_good_objects.end());
      // A rejected file keeps serving its last good resources, minus names an earlier file
      // now owns, so the published set never holds duplicates.
      for (const Scoped& s : entry.last_good) {
        const xds::ResourcePtr& r = s.resource;
        if (!claimed.emplace(ResourceKey(r->type, r->name), path).second) continue;
        if (s.groups.empty()) next.resources.push_back(r);
        for (const std::string& g : s.groups) next.group_resources[g].push_back(r);
      }
      if (entry.fresh || status != entry.logged_status) {
        if (status.empty()) {
          WEFT_LOG(kInfo) << "config dir: accepted " << path << " (" << entry.parsed.items.size()
                          << " resources, " << entry.parsed.objects.size() << " objects)";
        } else {
          WEFT_LOG(kWarning) << "config dir: rejected " << path << ": " << status
                             << (entry.last_good.empty() ? ""
                                                         : " (keeping its last good resources)");
        }
        entry.logged_status = status;
        entry.fresh = false;
      }
    }

    ConfigDirState copy;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (SameContent(state_, next) && state_.generation > 0) return;
      next.generation = state_.generation + 1;
      state_ = next;
      copy = state_;
    }
    if (notify && on_change_) on_change_(copy);
  }

  static bool SameResources(const std::vector<xds::ResourcePtr>& a,
                            const std::vector<xds::ResourcePtr>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (std::tie(a[i]->type, a[i]->name, a[i]->version) !=
          std::tie(b[i]->type, b[i]->name, b[i]->version)) {
        return false;
      }
    }
    return true;
  }

  static bool SameContent(const ConfigDirState& a, const ConfigDirState& b) {
    if (a.errors.size() != b.errors.size() || a.objects.size() != b.objects.size() ||
        !SameResources(a.resources, b.resources) ||
        a.group_resources.size() != b.group_resources.size()) {
      return false;
    }
    for (auto i = a.group_resources.begin(), j = b.group_resources.begin();
         i != a.group_resources.end(); ++i, ++j) {
      if (i->first != j->first || !SameResources(i->second, j->second)) return false;
    }
    for (size_t i = 0; i < a.objects.size(); ++i) {
      if (a.objects[i] != b.objects[i] &&
          DeterministicBytes(*a.objects[i]) != DeterministicBytes(*b.objects[i])) {
        return false;
      }
    }
    for (size_t i = 0; i < a.errors.size(); ++i) {
      if (a.errors[i].file != b.errors[i].file || a.errors[i].message != b.errors[i].message) {
        return false;
      }
    }
    return true;
  }

  const std::string dir_;
  const Callback on_change_;
  const ConfigDirOptions options_;
  int wake_fd_ = -1;
  int inotify_fd_ = -1;
  std::thread thread_;
  // Only the watcher thread (or Start, before it exists) touches these.
  std::map<std::string, FileEntry> files_;
  std::map<int, std::string> watch_dirs_;  // inotify wd -> directory
  std::set<std::string> touched_;          // files named by events since the last rescan
  bool overflowed_ = false;
  int quiet_rescans_ = 0;
  mutable std::mutex mu_;
  ConfigDirState state_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ConfigDirSource>> ConfigDirSource::Create(std::string dir,
                                                                         Callback on_change,
                                                                         ConfigDirOptions options) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat("config dir ", dir, ": not a directory"));
  }
  auto source =
      std::make_unique<ConfigDirSourceImpl>(std::move(dir), std::move(on_change), options);
  RETURN_IF_ERROR(source->Start());
  return std::unique_ptr<ConfigDirSource>(std::move(source));
}

}  // namespace weft::cp
