// Small OpenSSL helpers: owning pointers, PEM in and out, the error queue as text, ASN.1 times.
// Included only by .cc files of data-plane/tls and control-plane/ca, the two folders that may
// include OpenSSL headers (the CA links weft_tls_certs for them, not the TLS engine).
#pragma once

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "data-plane/tls/certs.h"

namespace weft::tls::internal {

struct Free {
  void operator()(X509* p) const { X509_free(p); }
  void operator()(X509_REQ* p) const { X509_REQ_free(p); }
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(X509_NAME* p) const { X509_NAME_free(p); }
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
  void operator()(STACK_OF(X509) * p) const { sk_X509_pop_free(p, X509_free); }
  void operator()(STACK_OF(X509_EXTENSION) * p) const {
    sk_X509_EXTENSION_pop_free(p, X509_EXTENSION_free);
  }
};
template <typename T>
using Ptr = std::unique_ptr<T, Free>;
using X509Ptr = Ptr<X509>;
using KeyPtr = Ptr<EVP_PKEY>;

// Drains this thread's OpenSSL error queue into one line ("" when empty).
inline std::string TakeErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

inline Ptr<BIO> MemBio(std::string_view data) {
  return Ptr<BIO>(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

inline std::string BioText(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, n > 0 ? static_cast<size_t>(n) : 0);
}

// Every certificate in `pem`, in order.
inline std::vector<X509Ptr> ReadCertificates(std::string_view pem) {
  std::vector<X509Ptr> out;
  Ptr<BIO> bio = MemBio(pem);
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(x);
  ERR_clear_error();  // the read that ends the loop leaves "no start line"
  return out;
}

inline std::string CertificatePem(X509* x) {
  Ptr<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), x);
  return BioText(bio.get());
}

inline std::string PrivateKeyPem(EVP_PKEY* key) {
  Ptr<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  return BioText(bio.get());
}

inline std::chrono::system_clock::time_point ToTimePoint(const ASN1_TIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return {};
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

inline int64_t ToUnix(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// "prime256v1", "secp384r1", "RSA-2048", ... for messages and policy.
inline std::string KeyDescription(EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "EC")) {
    char name[64] = {0};
    size_t len = 0;
    if (EVP_PKEY_get_group_name(key, name, sizeof(name), &len) == 1) return std::string(name, len);
    return "EC";
  }
  if (EVP_PKEY_is_a(key, "RSA")) return "RSA-" + std::to_string(EVP_PKEY_get_bits(key));
  return EVP_PKEY_get0_type_name(key) != nullptr ? EVP_PKEY_get0_type_name(key) : "unknown";
}

inline KeyPtr NewP256Key() { return KeyPtr(EVP_EC_gen("P-256")); }

// Subject, SANs, validity, key type of `x` (certs.cc).
CertificateInfo DescribeCertificate(X509* x);

}  // namespace weft::tls::internal
