#include "common/validation.h"

#include "absl/strings/str_cat.h"
#include "common/strings.h"

namespace weft {

ValidationErrors::Scope::Scope(ValidationErrors* errors, std::string_view component)
    : errors_(errors), previous_size_(errors->path_.size()) {
  errors_->Push(component);
}

ValidationErrors::Scope::~Scope() { errors_->path_.resize(previous_size_); }

void ValidationErrors::Push(std::string_view component) {
  if (component.empty()) return;
  if (!path_.empty() && component.front() != '.' && component.front() != '[') path_ += '.';
  if (path_.empty() && component.front() == '.') component.remove_prefix(1);
  path_ += component;
}

void ValidationErrors::Add(std::string_view message) {
  if (path_.empty()) {
    errors_.emplace_back(message);
  } else {
    errors_.push_back(absl::StrCat(path_, ": ", Sv(message)));
  }
}

void ValidationErrors::AddAt(std::string_view field, std::string_view message) {
  Scope scope(this, field);
  Add(message);
}

absl::Status ValidationErrors::ToStatus(std::string_view prefix, size_t max_errors) const {
  if (errors_.empty()) return absl::OkStatus();
  std::string out(prefix);
  size_t shown = std::min(max_errors, errors_.size());
  for (size_t i = 0; i < shown; ++i) {
    if (i > 0) out += "; ";
    out += errors_[i];
  }
  if (shown < errors_.size()) {
    absl::StrAppend(&out, "; and ", errors_.size() - shown, " more errors");
  }
  return absl::InvalidArgumentError(out);
}

}  // namespace weft
