#include "common/flags.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/strings.h"

namespace weft {

std::string_view WeftVersion() { return "0.1.0"; }

FlagSet::FlagSet(std::string program, std::string usage)
    : program_(std::move(program)), usage_(std::move(usage)) {}

void FlagSet::String(std::string_view name, std::string* target, std::string_view help) {
  flags_.push_back({std::string(name), Kind::kString, target, std::string(help),
                    target->empty() ? "" : absl::StrCat("\"", *target, "\"")});
}

void FlagSet::Int(std::string_view name, int64_t* target, std::string_view help) {
  flags_.push_back(
      {std::string(name), Kind::kInt, target, std::string(help), absl::StrCat(*target)});
}

void FlagSet::Bool(std::string_view name, bool* target, std::string_view help) {
  flags_.push_back(
      {std::string(name), Kind::kBool, target, std::string(help), *target ? "true" : "false"});
}

void FlagSet::StringList(std::string_view name, std::vector<std::string>* target,
                         std::string_view help) {
  flags_.push_back({std::string(name), Kind::kStringList, target, std::string(help), ""});
}

FlagSet::Flag* FlagSet::Find(std::string_view name) {
  for (Flag& f : flags_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

absl::Status FlagSet::Parse(int argc, char** argv) {
  bool only_positional = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (only_positional || arg.size() < 2 || arg[0] != '-') {
      positional_.emplace_back(arg);
      continue;
    }
    if (arg == "--") {
      only_positional = true;
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      help_requested_ = true;
      continue;
    }
    if (arg == "--version") {
      version_requested_ = true;
      continue;
    }
    arg.remove_prefix(arg.starts_with("--") ? 2 : 1);
    std::string_view name = arg;
    std::string_view value;
    bool has_value = false;
    if (size_t eq = arg.find('='); eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    Flag* flag = Find(name);
    if (flag == nullptr && !has_value && name.starts_with("no")) {
      Flag* neg = Find(name.substr(2));
      if (neg != nullptr && neg->kind == Kind::kBool) {
        *static_cast<bool*>(neg->target) = false;
        continue;
      }
    }
    if (flag == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", Sv(name), " (see --help)"));
    }
    if (flag->kind == Kind::kBool) {
      bool v = true;
      if (has_value && !absl::SimpleAtob(Sv(value), &v)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", Sv(name), ": expected true or false, got \"", Sv(value), "\""));
      }
      *static_cast<bool*>(flag->target) = v;
      continue;
    }
    if (!has_value) {
      if (i + 1 >= argc)
        return absl::InvalidArgumentError(absl::StrCat("--", Sv(name), ": missing value"));
      value = argv[++i];
    }
    if (flag->kind == Kind::kString) {
      *static_cast<std::string*>(flag->target) = std::string(value);
    } else if (flag->kind == Kind::kStringList) {
      static_cast<std::vector<std::string>*>(flag->target)->emplace_back(value);
    } else {
      int64_t v;
      if (!absl::SimpleAtoi(Sv(value), &v)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", Sv(name), ": expected an integer, got \"", Sv(value), "\""));
      }
      *static_cast<int64_t*>(flag->target) = v;
    }
  }
  return absl::OkStatus();
}

std::string FlagSet::Help() const {
  std::string out = absl::StrCat("Usage: ", program_, " ", usage_, "\n\nFlags:\n");
  for (const Flag& f : flags_) {
    std::string lhs = absl::StrCat("  --", f.name, f.kind == Kind::kBool ? "" : "=VALUE");
    absl::StrAppendFormat(&out, "%-28s %s", lhs, f.help);
    if (!f.default_text.empty()) absl::StrAppend(&out, " (default: ", f.default_text, ")");
    out += "\n";
  }
  absl::StrAppend(&out, "  --help                       show this help\n",
                  "  --version                    print the version\n");
  return out;
}

}  // namespace weft
