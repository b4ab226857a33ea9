#include "data-plane/http/header_map.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "data-plane/router/matchers.h"

namespace weft::http {

using router::EqualsIgnoreCase;

uint32_t HeaderMap::Store(std::string_view text) {
  const char* base = arena_.data();
  if (!text.empty() && text.data() >= base && text.data() < base + arena_.size()) {
    // Inside the arena already: append by offset, since growing may move it.
    const size_t offset = static_cast<size_t>(text.data() - base);
    const auto at = static_cast<uint32_t>(arena_.size());
    arena_.append(arena_, offset, text.size());
    return at;
  }
  const auto at = static_cast<uint32_t>(arena_.size());
  arena_.append(text);
  return at;
}

std::optional<std::string_view> HeaderMap::GetFirst(std::string_view name) const {
  for (size_t i = 0; i < entries_.size(); ++i) {
    Entry e = at(i);
    if (EqualsIgnoreCase(e.name, name)) return e.value;
  }
  return std::nullopt;
}

std::optional<std::string_view> HeaderMap::Get(std::string_view name) const {
  int count = 0;
  std::optional<std::string_view> first;
  for (size_t i = 0; i < entries_.size(); ++i) {
    Entry e = at(i);
    if (!EqualsIgnoreCase(e.name, name)) continue;
    if (count++ == 0) first = e.value;
  }
  if (count <= 1) return first;
  joined_.clear();
  for (size_t i = 0; i < entries_.size(); ++i) {
    Entry e = at(i);
    if (!EqualsIgnoreCase(e.name, name)) continue;
    if (!joined_.empty()) joined_.push_back(',');
    joined_.append(e.value);
  }
  return std::string_view(joined_);
}

std::pair<uint32_t, uint32_t> HeaderMap::StoreBoth(std::string_view a, std::string_view b) {
  // Either may point into the arena, and the first append could move it: take their offsets,
  // reserve room for both, then look them up again in the arena that will no longer move.
  const char* base = arena_.data();
  const size_t size = arena_.size();
  const auto offset = [&](std::string_view t) -> ptrdiff_t {
    return !t.empty() && t.data() >= base && t.data() < base + size ? t.data() - base : -1;
  };
  const ptrdiff_t oa = offset(a);
  const ptrdiff_t ob = offset(b);
  arena_.reserve(size + a.size() + b.size());
  if (oa >= 0) a = std::string_view(arena_.data() + oa, a.size());
  if (ob >= 0) b = std::string_view(arena_.data() + ob, b.size());
  const uint32_t at_a = Store(a);
  const uint32_t at_b = Store(b);
  return {at_a, at_b};
}

void HeaderMap::Add(std::string_view name, std::string_view value) {
  Slot s;
  std::tie(s.name, s.value) = StoreBoth(name, value);
  s.name_len = static_cast<uint32_t>(name.size());
  s.value_len = static_cast<uint32_t>(value.size());
  entries_.push_back(s);
  bytes_ += name.size() + value.size();
}

void HeaderMap::Set(std::string_view name, std::string_view value) {
  // Either may be one of the entries about to go: store both first. Remove only drops slots, so
  // the stored copies stay valid.
  Slot s;
  std::tie(s.name, s.value) = StoreBoth(name, value);
  s.name_len = static_cast<uint32_t>(name.size());
  s.value_len = static_cast<uint32_t>(value.size());
  Remove(View(s.name, s.name_len));
  entries_.push_back(s);
  bytes_ += name.size() + value.size();
}

void HeaderMap::Remove(std::string_view name) {
  std::erase_if(entries_, [&](const Slot& s) {
    if (!EqualsIgnoreCase(View(s.name, s.name_len), name)) return false;
    bytes_ -= s.name_len + s.value_len;
    return true;
  });
}

void HeaderMap::Clear() {
  arena_.clear();
  entries_.clear();
  bytes_ = 0;
}

// --- RequestHeaderMap ---

std::string* RequestHeaderMap::Pseudo(std::string_view name) {
  return const_cast<std::string*>(std::as_const(*this).Pseudo(name));
}

const std::string* RequestHeaderMap::Pseudo(std::string_view name) const {
  if (name.empty()) return nullptr;
  if (name[0] == ':') {
    if (name == ":method") return &method_;
    if (name == ":path") return &path_;
    if (name == ":authority") return &authority_;
    if (name == ":scheme") return &scheme_;
    return nullptr;
  }
  if (name.size() == 4 && EqualsIgnoreCase(name, "host")) return &authority_;
  return nullptr;
}

std::optional<std::string_view> RequestHeaderMap::Get(std::string_view name) const {
  if (const std::string* p = Pseudo(name)) {
    if (p->empty()) return std::nullopt;
    return std::string_view(*p);
  }
  return HeaderMap::Get(name);
}

void RequestHeaderMap::Set(std::string_view name, std::string_view value) {
  if (std::string* p = Pseudo(name)) {
    p->assign(value);
    return;
  }
  HeaderMap::Set(name, value);
}

void RequestHeaderMap::Add(std::string_view name, std::string_view value) {
  if (std::string* p = Pseudo(name)) {
    // A second Host is refused by the codec; a mutation adding one replaces it, as a request
    // has one authority.
    p->assign(value);
    return;
  }
  HeaderMap::Add(name, value);
}

void RequestHeaderMap::Remove(std::string_view name) {
  if (std::string* p = Pseudo(name)) {
    p->clear();
    return;
  }
  HeaderMap::Remove(name);
}

void RequestHeaderMap::Clear() {
  HeaderMap::Clear();
  method_.clear();
  path_.clear();
  authority_.clear();
  scheme_.clear();
}

// --- ResponseHeaderMap ---

std::optional<std::string_view> ResponseHeaderMap::Get(std::string_view name) const {
  if (name == ":status") {
    if (status_ < 100 || status_ > 999) return std::nullopt;
    status_text_[0] = static_cast<char>('0' + status_ / 100);
    status_text_[1] = static_cast<char>('0' + status_ / 10 % 10);
    status_text_[2] = static_cast<char>('0' + status_ % 10);
    return std::string_view(status_text_, 3);
  }
  return HeaderMap::Get(name);
}

void ResponseHeaderMap::Clear() {
  HeaderMap::Clear();
  status_ = 0;
}

}  // namespace weft::http
