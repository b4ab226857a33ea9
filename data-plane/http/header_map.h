// Header maps as every HTTP stage sees them, whatever the codec: the request line's parts as
// pseudo-headers (":method", ":path", ":authority", ":scheme") or a response's ":status", plus
// the other headers in arrival order.
//
// Names keep the case they arrived with (HTTP/1 peers may care) and compare case-insensitively;
// names added by the proxy are lower-case. A repeated header is one entry per occurrence; Get()
// presents them joined with ',' as Envoy's matchers see them.
//
// Storage: names and values live in one arena per map, reused request after request (a
// connection keeps its maps), so filling a map allocates nothing once warm. Views returned by
// Get() and iteration stay valid until the map is next changed.
//
// "host" and ":authority" are the same thing: an HTTP/1 Host header is the authority (as in
// Envoy), never a second entry, and Get("host") answers it too.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "data-plane/router/route_table.h"

namespace weft::http {

class HeaderMap : public router::MutableHeaders {
 public:
  struct Entry {
    std::string_view name;
    std::string_view value;
  };

  std::optional<std::string_view> Get(std::string_view name) const override;
  void Add(std::string_view name, std::string_view value) override;
  void Set(std::string_view name, std::string_view value) override;
  void Remove(std::string_view name) override;

  // The first value of `name` only (no joining).
  std::optional<std::string_view> GetFirst(std::string_view name) const;
  bool Has(std::string_view name) const { return GetFirst(name).has_value(); }
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  Entry at(size_t i) const {
    const Slot& s = entries_[i];
    return {std::string_view(arena_).substr(s.name, s.name_len),
            std::string_view(arena_).substr(s.value, s.value_len)};
  }
  template <typename F>
  void ForEach(F&& fn) const {
    for (size_t i = 0; i < entries_.size(); ++i) fn(at(i).name, at(i).value);
  }
  // Bytes of names and values, for head size limits and buffer reservations.
  size_t byte_size() const { return bytes_; }
  virtual void Clear();

 protected:
  // Stores `text` in the arena (safe when `text` already points into it); returns its offset.
  uint32_t Store(std::string_view text);
  // Stores both (either may point into the arena); returns their offsets.
  std::pair<uint32_t, uint32_t> StoreBoth(std::string_view a, std::string_view b);
  std::string_view View(uint32_t offset, uint32_t length) const {
    return std::string_view(arena_).substr(offset, length);
  }

 private:
  struct Slot {
    uint32_t name;
    uint32_t name_len;
    uint32_t value;
    uint32_t value_len;
  };
  std::string arena_;
  std::vector<Slot> entries_;
  size_t bytes_ = 0;
  mutable std::string joined_;  // the last joined value Get() returned
};

class RequestHeaderMap final : public HeaderMap {
 public:
  std::string_view method() const { return method_; }
  std::string_view path() const { return path_; }  // origin-form, query included
  std::string_view authority() const { return authority_; }
  std::string_view scheme() const { return scheme_; }
  void set_method(std::string_view v) { method_.assign(v); }
  void set_path(std::string_view v) { path_.assign(v); }
  void set_authority(std::string_view v) { authority_.assign(v); }
  void set_scheme(std::string_view v) { scheme_.assign(v); }

  std::optional<std::string_view> Get(std::string_view name) const override;
  void Set(std::string_view name, std::string_view value) override;
  void Add(std::string_view name, std::string_view value) override;
  void Remove(std::string_view name) override;
  void Clear() override;

 private:
  // Pseudo-header for `name` (":path", ..., "host" for ":authority"), or null.
  std::string* Pseudo(std::string_view name);
  const std::string* Pseudo(std::string_view name) const;
  std::string method_;
  std::string path_;
  std::string authority_;
  std::string scheme_;
};

class ResponseHeaderMap final : public HeaderMap {
 public:
  int status() const { return status_; }
  void set_status(int status) { status_ = status; }
  std::optional<std::string_view> Get(std::string_view name) const override;
  void Clear() override;

 private:
  int status_ = 0;
  mutable char status_text_[4] = {};
};

// Trailers: plain headers (no pseudo-headers).
using TrailerMap = HeaderMap;

}  // namespace weft::http
