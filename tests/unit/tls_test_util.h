// Certificates for TLS tests, minted by weft-cp's own Issuer on a fake clock (the tests include
// no OpenSSL header), and a pump that carries bytes between two engines in memory.
#pragma once

#include <catch2/catch.hpp>

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "control-plane/ca/issuer.h"
#include "data-plane/tls/certs.h"
#include "data-plane/tls/tls.h"

namespace weft::testing {

// 2027-01-15: X.509 needs a plausible wall time, which FakeClock's default start is not.
inline constexpr std::chrono::seconds kTestEpoch{1'800'000'000};

struct TestCert {
  std::string chain_pem;
  std::string key_pem;
};

inline std::unique_ptr<ca::Issuer> TestRoot(const Clock& clock, std::string trust_domain = "weft") {
  ca::CaSpec spec;
  spec.trust_domain = std::move(trust_domain);
  auto root = ca::Issuer::GenerateRoot(spec, clock);
  REQUIRE(root.ok());
  return *std::move(root);
}

inline TestCert IssueCert(const ca::Issuer& issuer, const std::string& spiffe_id,
                          std::chrono::seconds ttl = std::chrono::hours(24),
                          std::vector<std::string> dns = {}) {
  auto key = tls::GenerateKey();
  REQUIRE(key.ok());
  auto csr = tls::MakeCsr(*key, spiffe_id, dns);
  REQUIRE(csr.ok());
  ca::LeafSpec spec;
  spec.spiffe_id = spiffe_id;
  spec.dns_names = std::move(dns);
  spec.ttl = ttl;
  auto issued = issuer.SignCsr(*csr, spec);
  INFO(issued.status().ToString());
  REQUIRE(issued.ok());
  return TestCert{issued->chain_pem, *key};
}

// Moves bytes both ways until neither side has anything to say. Returns false if a side failed.
inline bool Pump(tls::Engine& client, tls::Engine& server, int rounds = 20) {
  using R = tls::Engine::Result;
  for (int i = 0; i < rounds; ++i) {
    R c = client.Handshake();
    std::string bytes;
    client.TakeCiphertext(&bytes);
    server.FeedCiphertext(bytes);
    R s = server.Handshake();
    bytes.clear();
    server.TakeCiphertext(&bytes);
    client.FeedCiphertext(bytes);
    if (c == R::kError || s == R::kError) return false;
    if (c == R::kOk && s == R::kOk && client.pending_ciphertext() == 0 &&
        server.pending_ciphertext() == 0 && bytes.empty()) {
      return true;
    }
  }
  return false;
}

// Carries what `from` has to send into `to`.
inline void Carry(tls::Engine& from, tls::Engine& to) {
  std::string bytes;
  from.TakeCiphertext(&bytes);
  to.FeedCiphertext(bytes);
}

// Files in a fresh temporary directory, removed with it (an operator's PEM files).
class TempFiles {
 public:
  TempFiles() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "weft-tls-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    dir_ = tmpl;
  }
  ~TempFiles() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string Write(const std::string& name, const std::string& contents) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << contents;
    return path;
  }

 private:
  std::string dir_;
};

}  // namespace weft::testing
