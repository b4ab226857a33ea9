#include <catch2/catch.hpp>

#include "common/status.h"
#include "common/validation.h"

namespace weft {
namespace {

TEST_CASE("ValidationErrors collects every error with its field path") {
  ValidationErrors errors;
  REQUIRE(errors.ok());
  REQUIRE(errors.ToStatus().ok());
  {
    ValidationErrors::Scope clusters(&errors, "clusters");
    {
      ValidationErrors::Scope idx(&errors, "[2]");
      errors.AddAt("lb_policy", "unknown value \"fastest\"");
      CHECK(errors.current_path() == "clusters[2]");
    }
    {
      ValidationErrors::Scope idx(&errors, "[3]");
      ValidationErrors::Scope name(&errors, "name");
      errors.Add("must not be empty");
    }
  }
  CHECK(errors.current_path().empty());
  errors.Add("top-level problem");
  absl::Status s = errors.ToStatus("config rejected: ");
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(s.message() ==
        "config rejected: clusters[2].lb_policy: unknown value \"fastest\"; "
        "clusters[3].name: must not be empty; top-level problem");
}

TEST_CASE("ValidationErrors summarises long lists") {
  ValidationErrors errors;
  for (int i = 0; i < 30; ++i) errors.AddAt("f" + std::to_string(i), "bad");
  std::string msg(errors.ToStatus("", 3).message());
  CHECK(msg == "f0: bad; f1: bad; f2: bad; and 27 more errors");
}

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::Status QuarterInto(int x, int* out) {
  ASSIGN_OR_RETURN(int h, Half(x));
  ASSIGN_OR_RETURN(*out, Half(h));
  RETURN_IF_ERROR(absl::OkStatus());
  return absl::OkStatus();
}

TEST_CASE("status macros return early on error") {
  int out = 0;
  CHECK(QuarterInto(8, &out).ok());
  CHECK(out == 2);
  out = 0;
  absl::Status s = QuarterInto(6, &out);
  CHECK(s.message() == "odd");
  CHECK(out == 0);
}

}  // namespace
}  // namespace weft
