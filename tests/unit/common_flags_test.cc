#include <catch2/catch.hpp>

#include "common/clock.h"
#include "common/flags.h"

namespace weft {
namespace {

absl::Status ParseArgs(FlagSet& flags, std::vector<std::string> args) {
  std::vector<char*> argv;
  static std::string prog = "prog";
  argv.push_back(prog.data());
  for (auto& a : args) argv.push_back(a.data());
  return flags.Parse(static_cast<int>(argv.size()), argv.data());
}

TEST_CASE("FlagSet parses the usual forms and rejects unknown flags") {
  std::string addr = "127.0.0.1:1";
  int64_t n = 3;
  bool verbose = true;
  FlagSet flags("prog", "[ARGS]");
  flags.String("addr", &addr, "address");
  flags.Int("n", &n, "count");
  flags.Bool("verbose", &verbose, "chatty");
  REQUIRE(
      ParseArgs(flags, {"--addr=0.0.0.0:9", "-n", "7", "--noverbose", "pos1", "--", "--x"}).ok());
  CHECK(addr == "0.0.0.0:9");
  CHECK(n == 7);
  CHECK_FALSE(verbose);
  CHECK(flags.positional() == std::vector<std::string>{"pos1", "--x"});
  CHECK(flags.Help().find("--addr=VALUE") != std::string::npos);

  FlagSet other("prog", "");
  other.Int("n", &n, "count");
  CHECK(ParseArgs(other, {"--bogus"}).message() == "unknown flag --bogus (see --help)");
  CHECK(ParseArgs(other, {"--n=seven"}).message() == "--n: expected an integer, got \"seven\"");
}

TEST_CASE("FakeClock moves only when advanced") {
  FakeClock clock;
  auto t0 = clock.Now();
  CHECK(clock.Now() == t0);
  clock.Advance(std::chrono::milliseconds(250));
  CHECK(clock.Now() - t0 == std::chrono::milliseconds(250));
  auto r0 = RealClock::Get().Now();
  auto r1 = RealClock::Get().Now();
  CHECK(r0 <= r1);
}

}  // namespace
}  // namespace weft
