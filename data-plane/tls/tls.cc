// Context and Engine over OpenSSL 3 with memory BIOs.
#include "data-plane/tls/tls.h"

#include <arpa/inet.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <atomic>
#include <list>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/strings.h"
#include "common/xds/tls_check.h"
#include "data-plane/tls/openssl_util.h"

namespace weft::tls {

using namespace internal;  // NOLINT: this folder's OpenSSL helpers

namespace {

struct SslFree {
  void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
  void operator()(SSL* p) const { SSL_free(p); }
};

constexpr char kTls13Suites[] =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

template <size_t N>
std::string Join(const std::vector<std::string>& chosen, const std::string_view (&defaults)[N]) {
  if (!chosen.empty()) return absl::StrJoin(chosen, ":");
  std::vector<std::string> all(std::begin(defaults), std::end(defaults));
  return absl::StrJoin(all, ":");
}

std::string AlpnWire(const std::vector<std::string>& protocols) {
  std::string wire;
  for (const std::string& p : protocols) {
    wire.push_back(static_cast<char>(p.size()));
    wire += p;
  }
  return wire;
}

// Reasons of this thread's OpenSSL errors, without the codes ("sslv3 alert certificate
// expired; ...").
std::string TakeReasons() {
  std::vector<std::string> reasons;
  while (unsigned long e = ERR_get_error()) {
    const char* r = ERR_reason_error_string(e);
    std::string reason = r != nullptr ? r : absl::StrCat("error ", e);
    if (reasons.empty() || reasons.back() != reason) reasons.push_back(std::move(reason));
  }
  return absl::StrJoin(reasons, "; ");
}

std::string Utc(WallTime t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromChrono(t), absl::UTCTimeZone());
}

// The SAN values of `type` in `x` (text form; IP addresses as inet_ntop writes them).
std::vector<std::string> SanValues(X509* x, SanMatcher::Type type) {
  std::vector<std::string> out;
  Ptr<GENERAL_NAMES> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr)));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names.get(), i);
    auto text = [](const ASN1_STRING* s) {
      return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                         static_cast<size_t>(ASN1_STRING_length(s)));
    };
    if (type == SanMatcher::Type::kUri && n->type == GEN_URI) {
      out.push_back(text(n->d.uniformResourceIdentifier));
    } else if (type == SanMatcher::Type::kDns && n->type == GEN_DNS) {
      out.push_back(text(n->d.dNSName));
    } else if (type == SanMatcher::Type::kEmail && n->type == GEN_EMAIL) {
      out.push_back(text(n->d.rfc822Name));
    } else if (type == SanMatcher::Type::kIp && n->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* ip = n->d.iPAddress;
      char buf[INET6_ADDRSTRLEN] = {0};
      int len = ASN1_STRING_length(ip);
      if ((len == 4 || len == 16) &&
          inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(ip), buf, sizeof(buf))) {
        out.push_back(buf);
      }
    }
  }
  return out;
}

std::string_view TypeName(SanMatcher::Type t) {
  switch (t) {
    case SanMatcher::Type::kDns:
      return "DNS";
    case SanMatcher::Type::kUri:
      return "URI";
    case SanMatcher::Type::kEmail:
      return "EMAIL";
    case SanMatcher::Type::kIp:
      return "IP";
  }
  return "";
}

int ContextIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}
int EngineIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

std::atomic<uint64_t> g_next_context_id{1};

}  // namespace

struct Context::Impl {
  ~Impl() {
    for (auto& [sni, session] : sessions) SSL_SESSION_free(session);
  }
  std::unique_ptr<SSL_CTX, SslFree> ctx;
  Role role = Role::kServer;
  const Clock* clock = nullptr;
  uint64_t id = 0;
  std::optional<CertificateInfo> certificate;
  std::vector<SanMatcher> san_matchers;
  bool verify_peer = false;
  std::string alpn_wire;
  std::string sni;
  uint32_t max_session_keys = 1;
  // Client sessions by SNI, most recently stored first.
  mutable std::mutex session_mu;
  mutable std::list<std::pair<std::string, SSL_SESSION*>> sessions;
};

struct Engine::Impl {
  std::shared_ptr<const Context> context;
  std::unique_ptr<SSL, SslFree> ssl;
  BIO* rbio = nullptr;  // owned by ssl
  BIO* wbio = nullptr;
  std::string sni;
  bool done = false;
  bool failed = false;
  bool eof = false;
  std::string error;
  std::string verify_error;  // set by the verify callback: the clearest reason there is
  PeerInfo peer;

  Result Fail(std::string_view what) {
    failed = true;
    std::string reasons = TakeReasons();
    if (!verify_error.empty()) {
      error = verify_error;
    } else if (eof && (reasons.empty() || reasons.find("unexpected eof") != std::string::npos)) {
      error = absl::StrCat(Sv(what), done ? ": the peer closed the connection without close_notify"
                                          : ": the peer closed the connection");
    } else {
      error = absl::StrCat(Sv(what), ": ", reasons.empty() ? "unknown error" : reasons);
    }
    return Result::kError;
  }

  void Completed() {
    done = true;
    X509* leaf = SSL_get0_peer_certificate(ssl.get());
    peer.presented_certificate = leaf != nullptr;
    if (leaf != nullptr) {
      peer.leaf = DescribeCertificate(leaf);
      peer.spiffe_id = peer.leaf.spiffe_id;
      peer.verified = context->impl().verify_peer && SSL_get_verify_result(ssl.get()) == X509_V_OK;
    }
  }
};

namespace {

// Runs after OpenSSL's own check of each certificate; at the leaf, the SAN matchers.
int VerifyCallback(int ok, X509_STORE_CTX* store) {
  SSL* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* engine = static_cast<Engine::Impl*>(SSL_get_ex_data(ssl, EngineIndex()));
  if (engine == nullptr) return ok;
  int depth = X509_STORE_CTX_get_error_depth(store);
  X509* cert = X509_STORE_CTX_get_current_cert(store);
  if (!ok) {
    if (engine->verify_error.empty()) {
      int err = X509_STORE_CTX_get_error(store);
      CertificateInfo info = cert != nullptr ? DescribeCertificate(cert) : CertificateInfo{};
      std::string who = !info.spiffe_id.empty() ? info.spiffe_id
                        : !info.subject.empty() ? info.subject
                                                : "no subject";
      std::string when;
      if (err == X509_V_ERR_CERT_HAS_EXPIRED) when = ", not valid after " + Utc(info.not_after);
      if (err == X509_V_ERR_CERT_NOT_YET_VALID) when = ", not valid before " + Utc(info.not_before);
      engine->verify_error =
          absl::StrCat("peer certificate rejected: ", X509_verify_cert_error_string(err),
                       " (certificate ", depth, ": ", who, when, ")");
    }
    return 0;
  }
  const Context::Impl& ctx = engine->context->impl();
  if (depth != 0 || ctx.san_matchers.empty()) return 1;
  std::vector<std::string> seen;
  for (const SanMatcher& m : ctx.san_matchers) {
    for (const std::string& v : SanValues(cert, m.type)) {
      if (m.matcher.Match(v)) return 1;
    }
  }
  for (SanMatcher::Type t : {SanMatcher::Type::kUri, SanMatcher::Type::kDns,
                             SanMatcher::Type::kEmail, SanMatcher::Type::kIp}) {
    for (const std::string& v : SanValues(cert, t))
      seen.push_back(absl::StrCat(Sv(TypeName(t)), ":", v));
  }
  std::vector<std::string> wanted;
  for (const SanMatcher& m : ctx.san_matchers) wanted.push_back(m.description);
  engine->verify_error = absl::StrCat("peer certificate rejected: its subject alt names (",
                                      seen.empty() ? "none" : absl::StrJoin(seen, ", "),
                                      ") match none of match_typed_subject_alt_names (",
                                      absl::StrJoin(wanted, "; "), ")");
  X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
  return 0;
}

int AlpnSelect(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void* arg) {
  const auto* ctx = static_cast<const Context::Impl*>(arg);
  unsigned char* selected = nullptr;
  unsigned char selected_len = 0;
  // Server preference: the first of our protocols the client also offers.
  if (SSL_select_next_proto(
          &selected, &selected_len, reinterpret_cast<const unsigned char*>(ctx->alpn_wire.data()),
          static_cast<unsigned int>(ctx->alpn_wire.size()), in, inlen) == OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    *outlen = selected_len;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;  // as Envoy: go on without ALPN
}

int NewSessionCallback(SSL* ssl, SSL_SESSION* session) {
  auto* engine = static_cast<Engine::Impl*>(SSL_get_ex_data(ssl, EngineIndex()));
  if (engine == nullptr) return 0;
  const Context::Impl& ctx = engine->context->impl();
  if (ctx.max_session_keys == 0) return 0;
  std::lock_guard lock(ctx.session_mu);
  for (auto it = ctx.sessions.begin(); it != ctx.sessions.end(); ++it) {
    if (it->first == engine->sni) {
      SSL_SESSION_free(it->second);
      ctx.sessions.erase(it);
      break;
    }
  }
  // A copy: OpenSSL marks a connection's own session not resumable when the connection ends
  // without close_notify, which HTTP peers often do.
  SSL_SESSION* copy = SSL_SESSION_dup(session);
  if (copy == nullptr) return 0;
  ctx.sessions.emplace_front(engine->sni, copy);
  while (ctx.sessions.size() > ctx.max_session_keys) {
    SSL_SESSION_free(ctx.sessions.back().second);
    ctx.sessions.pop_back();
  }
  return 0;  // the connection keeps its reference; the cache holds the copy
}

}  // namespace

TicketKeys NewTicketKeys() {
  std::string keys(80, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(keys.data()), static_cast<int>(keys.size()));
  return keys;
}

Context::Context(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Context::~Context() = default;
Role Context::role() const { return impl_->role; }
uint64_t Context::id() const { return impl_->id; }
const std::optional<CertificateInfo>& Context::certificate() const { return impl_->certificate; }

absl::StatusOr<std::shared_ptr<const Context>> Context::Create(const ContextConfig& config,
                                                               const Clock& clock,
                                                               const TicketKeys* ticket_keys) {
  ERR_clear_error();
  const bool server = config.role == Role::kServer;
  auto impl = std::make_unique<Impl>();
  impl->role = config.role;
  impl->clock = &clock;
  impl->san_matchers = config.san_matchers;
  impl->alpn_wire = AlpnWire(config.alpn);
  impl->sni = config.sni;
  impl->max_session_keys = config.max_session_keys;
  impl->ctx.reset(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
  SSL_CTX* ctx = impl->ctx.get();
  if (ctx == nullptr) return absl::InternalError("SSL_CTX_new: " + TakeErrors());
  auto fail = [](std::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(Sv(what), ": ", TakeReasons()));
  };

  if (config.tls13_only && config.tls12_only) {
    return absl::InvalidArgumentError("TLS 1.3 minimum and TLS 1.2 maximum leave no version");
  }
  SSL_CTX_set_min_proto_version(ctx, config.tls13_only ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx, config.tls12_only ? TLS1_2_VERSION : TLS1_3_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               (server ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
  // Idle connections give their record buffers back (a sidecar holds many).
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  // The allowlists hold even for a config that did not pass the shared checks.
  for (const std::string& c : config.cipher_suites) {
    if (std::find(std::begin(xds::kTls12CipherSuites), std::end(xds::kTls12CipherSuites), c) ==
        std::end(xds::kTls12CipherSuites)) {
      return absl::InvalidArgumentError(absl::StrCat("cipher_suites: \"", c, "\" is not allowed"));
    }
  }
  for (const std::string& c : config.curves) {
    if (std::find(std::begin(xds::kEcdhCurves), std::end(xds::kEcdhCurves), c) ==
        std::end(xds::kEcdhCurves)) {
      return absl::InvalidArgumentError(absl::StrCat("ecdh_curves: \"", c, "\" is not allowed"));
    }
  }
  if (SSL_CTX_set_cipher_list(ctx, Join(config.cipher_suites, xds::kTls12CipherSuites).c_str()) !=
          1 ||
      SSL_CTX_set_ciphersuites(ctx, kTls13Suites) != 1) {
    return fail("cipher_suites");
  }
  if (SSL_CTX_set1_groups_list(ctx, Join(config.curves, xds::kEcdhCurves).c_str()) != 1) {
    return fail("ecdh_curves");
  }

  if (!config.certificate_chain_pem.empty()) {
    std::vector<X509Ptr> chain = ReadCertificates(config.certificate_chain_pem);
    if (chain.empty()) return absl::InvalidArgumentError("certificate_chain: no certificate");
    Ptr<BIO> kb = MemBio(config.private_key_pem);
    KeyPtr key(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
    if (!key) return fail("private_key");
    if (SSL_CTX_use_certificate(ctx, chain[0].get()) != 1) return fail("certificate_chain");
    for (size_t i = 1; i < chain.size(); ++i) {
      if (SSL_CTX_add1_chain_cert(ctx, chain[i].get()) != 1) return fail("certificate_chain");
    }
    if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
      ERR_clear_error();
      return absl::InvalidArgumentError("private_key does not match the certificate");
    }
    impl->certificate = DescribeCertificate(chain[0].get());
  } else if (server) {
    return absl::InvalidArgumentError("a server needs a certificate");
  }

  if (!config.trusted_ca_pem.empty()) {
    std::vector<X509Ptr> roots = ReadCertificates(config.trusted_ca_pem);
    if (roots.empty()) return absl::InvalidArgumentError("trusted_ca: no certificate");
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    for (const X509Ptr& r : roots) {
      if (X509_STORE_add_cert(store, r.get()) != 1) return fail("trusted_ca");
    }
    int mode = SSL_VERIFY_PEER;
    if (server && config.require_client_certificate) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, VerifyCallback);
    if (config.max_verify_depth) {
      SSL_CTX_set_verify_depth(ctx, static_cast<int>(*config.max_verify_depth) - 1);
    }
    impl->verify_peer = true;
  } else if (config.require_client_certificate || !server) {
    return absl::InvalidArgumentError("peer verification needs trusted_ca");
  }

  if (server) {
    if (!impl->alpn_wire.empty()) SSL_CTX_set_alpn_select_cb(ctx, AlpnSelect, impl.get());
    // A session is resumed only under the validation settings it was verified with.
    std::string validation = absl::StrCat(config.trusted_ca_pem, "\n",
                                          config.require_client_certificate ? "required" : "");
    for (const SanMatcher& m : config.san_matchers)
      absl::StrAppend(&validation, "\n", m.description);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    EVP_Digest(validation.data(), validation.size(), digest, &digest_len, EVP_sha256(), nullptr);
    SSL_CTX_set_session_id_context(ctx, digest,
                                   std::min<unsigned int>(digest_len, SSL_MAX_SID_CTX_LENGTH));
    if (!config.stateless_resumption) SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    if (!config.stateful_resumption) SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (!config.stateless_resumption && !config.stateful_resumption) {
      SSL_CTX_set_num_tickets(ctx, 0);
    }
    SSL_CTX_set_timeout(ctx, static_cast<long>(config.session_timeout.count()));
    if (ticket_keys != nullptr && config.stateless_resumption) {
      if (ticket_keys->size() != 80 ||
          SSL_CTX_set_tlsext_ticket_keys(ctx, const_cast<char*>(ticket_keys->data()), 80) != 1) {
        return fail("session ticket keys");
      }
    }
  } else {
    if (!impl->alpn_wire.empty() &&
        SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>(impl->alpn_wire.data()),
                                static_cast<unsigned int>(impl->alpn_wire.size())) != 0) {
      return fail("alpn_protocols");
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, NewSessionCallback);
  }
  SSL_CTX_set_ex_data(ctx, ContextIndex(), impl.get());
  impl->id = g_next_context_id.fetch_add(1);
  return std::shared_ptr<const Context>(new Context(std::move(impl)));
}

// ---------------------------------------------------------------------------------------------

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() {
  // The callbacks look the engine up through the SSL; nothing may reach it once freed.
  if (impl_ && impl_->ssl) SSL_set_ex_data(impl_->ssl.get(), EngineIndex(), nullptr);
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(std::shared_ptr<const Context> context,
                                                       std::string_view sni) {
  if (!context) return absl::InvalidArgumentError("no TLS context");
  ERR_clear_error();
  auto impl = std::make_unique<Impl>();
  const Context::Impl& ctx = context->impl();
  impl->sni = sni.empty() ? ctx.sni : std::string(sni);
  impl->ssl.reset(SSL_new(ctx.ctx.get()));
  if (!impl->ssl) return absl::InternalError("SSL_new: " + TakeErrors());
  SSL* ssl = impl->ssl.get();
  impl->rbio = BIO_new(BIO_s_mem());
  impl->wbio = BIO_new(BIO_s_mem());
  if (impl->rbio == nullptr || impl->wbio == nullptr) {
    BIO_free(impl->rbio);
    BIO_free(impl->wbio);
    return absl::InternalError("BIO_new: " + TakeErrors());
  }
  // An empty read BIO means "no bytes yet", not end of stream (FeedEof changes that).
  BIO_set_mem_eof_return(impl->rbio, -1);
  SSL_set_bio(ssl, impl->rbio, impl->wbio);
  SSL_set_ex_data(ssl, EngineIndex(), impl.get());
  // Certificates are judged at the context clock's time (a fake one in tests).
  X509_VERIFY_PARAM_set_time(SSL_get0_param(ssl),
                             std::chrono::system_clock::to_time_t(ctx.clock->WallNow()));
  if (ctx.role == Role::kServer) {
    SSL_set_accept_state(ssl);
  } else {
    SSL_set_connect_state(ssl);
    if (!impl->sni.empty() && SSL_set_tlsext_host_name(ssl, impl->sni.c_str()) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("bad SNI \"", impl->sni, "\""));
    }
    if (ctx.max_session_keys > 0) {
      std::lock_guard lock(ctx.session_mu);
      for (const auto& [name, session] : ctx.sessions) {
        if (name == impl->sni && SSL_SESSION_is_resumable(session)) {
          SSL_set_session(ssl, session);
          break;
        }
      }
    }
  }
  impl->context = std::move(context);
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

void Engine::FeedCiphertext(std::string_view bytes) {
  if (!bytes.empty()) BIO_write(impl_->rbio, bytes.data(), static_cast<int>(bytes.size()));
}

void Engine::FeedEof() {
  impl_->eof = true;
  BIO_set_mem_eof_return(impl_->rbio, 0);
}

size_t Engine::pending_ciphertext() const { return BIO_ctrl_pending(impl_->wbio); }

void Engine::TakeCiphertext(std::string* out) {
  size_t n = BIO_ctrl_pending(impl_->wbio);
  if (n == 0) return;
  size_t old = out->size();
  out->resize(old + n);
  int got = BIO_read(impl_->wbio, out->data() + old, static_cast<int>(n));
  out->resize(old + static_cast<size_t>(got > 0 ? got : 0));
}

Engine::Result Engine::Handshake() {
  Impl& e = *impl_;
  if (e.failed) return Result::kError;
  if (e.done) return Result::kOk;
  ERR_clear_error();
  int r = SSL_do_handshake(e.ssl.get());
  if (r == 1) {
    e.Completed();
    return Result::kOk;
  }
  if (SSL_get_error(e.ssl.get(), r) == SSL_ERROR_WANT_READ && !e.eof) return Result::kWantRead;
  return e.Fail("TLS handshake failed");
}

Engine::Result Engine::Read(std::string* out) {
  Impl& e = *impl_;
  if (e.failed) return Result::kError;
  if (!e.done) {
    Result r = Handshake();
    if (r != Result::kOk) return r;
  }
  size_t before = out->size();
  constexpr size_t kChunk = 16384;
  while (true) {
    size_t old = out->size();
    out->resize(old + kChunk);
    size_t n = 0;
    ERR_clear_error();
    int r = SSL_read_ex(e.ssl.get(), out->data() + old, kChunk, &n);
    out->resize(old + (r == 1 ? n : 0));
    if (r == 1) continue;
    bool appended = out->size() > before;
    int err = SSL_get_error(e.ssl.get(), r);
    if (err == SSL_ERROR_WANT_READ && !e.eof) return appended ? Result::kOk : Result::kWantRead;
    if (err == SSL_ERROR_ZERO_RETURN) return appended ? Result::kOk : Result::kClosed;
    // Data already decrypted goes up first; the failure shows on the next call.
    e.Fail("TLS read failed");
    return appended ? Result::kOk : Result::kError;
  }
}

Engine::Result Engine::Write(std::string_view data) {
  Impl& e = *impl_;
  if (e.failed) return Result::kError;
  if (!e.done) {
    Result r = Handshake();
    if (r != Result::kOk) return r;
  }
  if (data.empty()) return Result::kOk;
  ERR_clear_error();
  size_t written = 0;
  if (SSL_write_ex(e.ssl.get(), data.data(), data.size(), &written) != 1 ||
      written != data.size()) {
    return e.Fail("TLS write failed");
  }
  return Result::kOk;
}

void Engine::Shutdown() {
  ERR_clear_error();
  if (impl_->done && !impl_->failed) SSL_shutdown(impl_->ssl.get());
  ERR_clear_error();
}

bool Engine::handshake_complete() const { return impl_->done; }
const std::string& Engine::error() const { return impl_->error; }
const Context& Engine::context() const { return *impl_->context; }

std::string_view Engine::alpn() const {
  const unsigned char* p = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(impl_->ssl.get(), &p, &len);
  return std::string_view(reinterpret_cast<const char*>(p), p != nullptr ? len : 0);
}
std::string_view Engine::version() const { return SSL_get_version(impl_->ssl.get()); }
std::string_view Engine::cipher() const {
  const char* name = SSL_get_cipher_name(impl_->ssl.get());
  return name != nullptr ? name : "";
}
bool Engine::resumed() const { return SSL_session_reused(impl_->ssl.get()) == 1; }
std::string_view Engine::server_name() const {
  const char* name = SSL_get_servername(impl_->ssl.get(), TLSEXT_NAMETYPE_host_name);
  return name != nullptr ? name : "";
}
const PeerInfo& Engine::peer() const { return impl_->peer; }

std::string Engine::PeerChainPem() const {
  std::string out;
  X509* leaf = SSL_get0_peer_certificate(impl_->ssl.get());
  if (leaf == nullptr) return out;
  out += CertificatePem(leaf);
  // A client's list starts with the server's leaf; a server's list omits the client's.
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(impl_->ssl.get());
  for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) {
    X509* x = sk_X509_value(chain, i);
    if (X509_cmp(x, leaf) != 0) out += CertificatePem(x);
  }
  return out;
}

}  // namespace weft::tls
