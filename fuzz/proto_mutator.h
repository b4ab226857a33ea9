// Structure-aware mutation for fuzz targets whose input is a protobuf message (xDS resources,
// route configurations): libFuzzer's custom mutator parses the input, changes one to a few
// fields through reflection (set, clear, add or drop a repeated element, copy a string from
// elsewhere in the message, unpack a google.protobuf.Any and mutate what it holds) and
// serializes the result. Byte-level mutation (1 in 16) keeps the wire decoder itself fuzzed.
//
// Debian ships no libprotobuf-mutator, so this is a small one of our own: enough to reach
// validation and compilation code that random bytes almost never get past the parser to.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>

#include "google/protobuf/message.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace weft::fuzz {

// Applies one structural change to `message`.
void MutateOnce(google::protobuf::Message* message, std::mt19937_64& rng);

// The body of LLVMFuzzerCustomMutator for a message of `prototype`'s type.
size_t MutateSerialized(const google::protobuf::Message& prototype, uint8_t* data, size_t size,
                        size_t max_size, unsigned int seed);

// The body of LLVMFuzzerCustomCrossOver: a submessage of the second input replaces one of the
// same type in the first (or is added to a repeated field of that type).
size_t CrossOverSerialized(const google::protobuf::Message& prototype, const uint8_t* data1,
                           size_t size1, const uint8_t* data2, size_t size2, uint8_t* out,
                           size_t max_out_size, unsigned int seed);

// Silences protobuf's own error log (invalid UTF-8 and the like, the fuzzer's daily bread).
void QuietProtobufLogs();

}  // namespace weft::fuzz

// Defines the custom mutator and cross-over for inputs that are serialized `Type` messages.
#define WEFT_FUZZ_PROTO_MUTATOR(Type)                                                          \
  extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size,       \
                                            unsigned int seed) {                               \
    static const Type prototype;                                                               \
    return weft::fuzz::MutateSerialized(prototype, data, size, max_size, seed);                \
  }                                                                                            \
  extern "C" size_t LLVMFuzzerCustomCrossOver(const uint8_t* d1, size_t s1, const uint8_t* d2, \
                                              size_t s2, uint8_t* out, size_t max_out,         \
                                              unsigned int seed) {                             \
    static const Type prototype;                                                               \
    return weft::fuzz::CrossOverSerialized(prototype, d1, s1, d2, s2, out, max_out, seed);     \
  }
