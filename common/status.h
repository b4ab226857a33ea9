// Status helpers shared by every Weft binary. Fallible code returns absl::Status or
// absl::StatusOr<T>; these macros keep the early-return plumbing to one line.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define WEFT_CONCAT_INNER_(a, b) a##b
#define WEFT_CONCAT_(a, b) WEFT_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` yields a non-OK absl::Status.
#define RETURN_IF_ERROR(expr)                    \
  do {                                           \
    ::absl::Status weft_status_ = (expr);        \
    if (!weft_status_.ok()) return weft_status_; \
  } while (0)

#define WEFT_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                \
  if (!tmp.ok()) return std::move(tmp).status();     \
  lhs = std::move(tmp).value()

// `ASSIGN_OR_RETURN(auto x, MaybeX());` declares x, or returns the error.
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  WEFT_ASSIGN_OR_RETURN_IMPL_(WEFT_CONCAT_(weft_statusor_, __LINE__), lhs, rexpr)
