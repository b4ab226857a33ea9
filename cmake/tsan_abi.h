// Force-included into every C++ file of the TSan build (CMakeLists.txt, WEFT_TSAN).
//
// Debian's libprotobuf is built without ThreadSanitizer, but protobuf's map_field.h gives
// MapFieldBase two extra members when __SANITIZE_THREAD__ is defined, ahead of the members the
// library's own code uses. Instrumented code then reads every map field, and the library reads
// ours, at the wrong offsets: google.protobuf.Struct's fields() crashed in config_dir_test, and
// syncs of our own generated maps touch the wrong words. Seeing map_field.h once as a plain build
// does makes the layout the library's. Everything else still sees the sanitizer's macros.
#pragma once

#include <cstddef>  // libstdc++'s c++config.h first, so _GLIBCXX_TSAN stays set.

#pragma push_macro("__SANITIZE_THREAD__")
#undef __SANITIZE_THREAD__
#include <google/protobuf/map_field.h>
#pragma pop_macro("__SANITIZE_THREAD__")
