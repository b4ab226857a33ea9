// A real certificate and key for e2e tests that put Secrets in weft-cp's config dir: weft-cp
// checks them down to the key (the key must parse and match the certificate), so placeholder
// bytes are refused. Minted at run time by weft-cp's own issuer; nothing is checked in.
#pragma once

#include <string>

namespace weft::test {

struct TestCertificate {
  std::string chain_pem;
  std::string key_pem;
  std::string key_line;  // one base64 line of the key: bytes that must never leave weft-cp
};

// The same material for the whole test process.
const TestCertificate& WorkloadCertificate();

// `pem` as a double-quoted YAML/JSON string ("\n" escaped).
std::string QuotedPem(const std::string& pem);

}  // namespace weft::test
