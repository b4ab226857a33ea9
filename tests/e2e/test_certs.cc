#include "tests/e2e/test_certs.h"

#include <cstdio>
#include <cstdlib>

#include "common/clock.h"
#include "control-plane/ca/issuer.h"
#include "data-plane/tls/certs.h"

namespace weft::test {

const TestCertificate& WorkloadCertificate() {
  static const TestCertificate* cert = [] {
    auto fail = [](const char* what) {
      std::fprintf(stderr, "test certificate: %s\n", what);
      std::abort();
    };
    auto root = ca::Issuer::GenerateRoot(ca::CaSpec{}, RealClock::Get());
    if (!root.ok()) fail("root");
    auto key = tls::GenerateKey();
    if (!key.ok()) fail("key");
    const std::string id = "spiffe://weft/ns/default/sa/server";
    auto csr = tls::MakeCsr(*key, id);
    if (!csr.ok()) fail("csr");
    ca::LeafSpec spec;
    spec.spiffe_id = id;
    auto issued = (*root)->SignCsr(*csr, spec);
    if (!issued.ok()) fail("sign");
    auto* out = new TestCertificate{issued->chain_pem, *key, ""};
    size_t first = out->key_pem.find('\n') + 1;
    out->key_line = out->key_pem.substr(first, out->key_pem.find('\n', first) - first);
    return out;
  }();
  return *cert;
}

std::string QuotedPem(const std::string& pem) {
  std::string out = "\"";
  for (char c : pem) {
    if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace weft::test
