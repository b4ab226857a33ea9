// An invariant a fuzz target checks: unlike assert() it stays on in every build type, and it
// aborts so libFuzzer records the input as a crash.
#pragma once

#include <cstdio>
#include <cstdlib>

#define WEFT_FUZZ_CHECK(cond)                                                       \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)
