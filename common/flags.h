// A small, explicit command-line parser: each binary lists its flags once, and --help prints
// exactly those (absl's flag registry would also print flags of every linked library).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace weft {

class FlagSet {
 public:
  FlagSet(std::string program, std::string usage);
  void String(std::string_view name, std::string* target, std::string_view help);
  void Int(std::string_view name, int64_t* target, std::string_view help);
  void Bool(std::string_view name, bool* target, std::string_view help);
  // Repeatable: every occurrence appends.
  void StringList(std::string_view name, std::vector<std::string>* target, std::string_view help);

  // Parses --name=value, --name value and --flag / --noflag. Non-flag arguments go to
  // positional(). Returns an error naming the bad flag. Sets help_requested() for -h/--help.
  absl::Status Parse(int argc, char** argv);
  bool help_requested() const { return help_requested_; }
  bool version_requested() const { return version_requested_; }
  const std::vector<std::string>& positional() const { return positional_; }
  std::string Help() const;

 private:
  enum class Kind { kString, kInt, kBool, kStringList };
  struct Flag {
    std::string name;
    Kind kind;
    void* target;
    std::string help;
    std::string default_text;
  };
  Flag* Find(std::string_view name);
  std::string program_;
  std::string usage_;
  std::vector<Flag> flags_;
  std::vector<std::string> positional_;
  bool help_requested_ = false;
  bool version_requested_ = false;
};

// Version string shared by all binaries.
std::string_view WeftVersion();

}  // namespace weft
