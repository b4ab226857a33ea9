// Collects every problem found while validating a structure, each with the field path it
// concerns, so one pass reports all of them in one message, e.g.
//   clusters[2].lb_policy: unknown value "fastest"; listeners[0].name: must not be empty
// The same collector serves the proxy (NACK error_detail) and the control plane (apply-time
// refusal), which is what lets weft-cp reject exactly what a proxy would.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace weft {

class ValidationErrors {
 public:
  // RAII scope that appends a path component: `.name`, `[3]` or `["key"]`. Components that do
  // not start with '.' or '[' get a '.' separator automatically.
  class Scope {
   public:
    Scope(ValidationErrors* errors, std::string_view component);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    ValidationErrors* errors_;
    size_t previous_size_;
  };

  // Records `message` against the current path.
  void Add(std::string_view message);
  // Records `message` against the current path extended by `field`.
  void AddAt(std::string_view field, std::string_view message);

  bool ok() const { return errors_.empty(); }
  size_t size() const { return errors_.size(); }
  const std::vector<std::string>& errors() const { return errors_; }
  std::string_view current_path() const { return path_; }

  // OK when nothing was recorded; otherwise InvalidArgument with `prefix` then every error
  // joined by "; ". More than `max_errors` are summarised so a huge bad input stays readable.
  absl::Status ToStatus(std::string_view prefix = "", size_t max_errors = 20) const;

 private:
  friend class Scope;
  void Push(std::string_view component);
  std::string path_;
  std::vector<std::string> errors_;
};

}  // namespace weft
