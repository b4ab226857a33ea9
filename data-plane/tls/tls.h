// TLS for weft-proxy, independent of sockets: contexts built from Envoy's wire config, an engine
// that runs one TLS connection over memory buffers, and a store that swaps contexts when an SDS
// Secret changes. The connection layer's TransportSocket (data-plane/network) wraps an Engine:
// it feeds what the socket read into FeedCiphertext, writes out what TakeCiphertext returns,
// and moves plaintext through Read / Write.
//
// Policy, as common/xds/tls_check.h accepts it: TLS 1.2 and 1.3 only; TLS 1.2 suites ECDHE +
// AEAD only; groups X25519, P-256, P-384; no renegotiation, no compression. Peers are verified
// against the configured CA bundle, and their certificate's SANs against
// match_typed_subject_alt_names (any matcher matching any SAN of its type passes, as in Envoy).
// Resumption: TLS 1.3 tickets and TLS 1.2 tickets or session ids on the server, a per-context
// cache (max_session_keys) on the client; a resumed session is only accepted under the same
// validation settings it was verified with.
//
// OpenSSL stays in the .cc files (only this folder and control-plane/ca include it).
//
// Threading: a Context is immutable and shared by every worker (its client session cache is
// internally locked); an Engine belongs to one connection and one thread; the ContextStore is
// locked, written by the xDS side and read when a connection starts.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "data-plane/router/matchers.h"
#include "data-plane/tls/certs.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb.h"

namespace weft::tls {

enum class Role { kServer, kClient };

struct SanMatcher {
  enum class Type { kDns, kUri, kEmail, kIp };
  Type type;
  router::StringMatcher matcher;
  std::string description;  // e.g. `URI prefix "spiffe://weft/ns/shop/"`, for error messages
};

// Everything a context is made of, with SDS names already resolved to the secrets' contents.
struct ContextConfig {
  Role role = Role::kServer;
  // The own certificate (leaf first) and key; empty for a client that presents none.
  std::string certificate_chain_pem;
  std::string private_key_pem;
  // Roots peers are verified against; empty: a server asks for no client certificate.
  std::string trusted_ca_pem;
  std::vector<SanMatcher> san_matchers;
  std::optional<uint32_t> max_verify_depth;  // Envoy's meaning: CA certificates after the leaf
  bool require_client_certificate = false;   // server only
  std::vector<std::string> alpn;             // in preference order
  bool tls13_only = false;                   // tls_minimum_protocol_version TLSv1_3
  bool tls12_only = false;                   // tls_maximum_protocol_version TLSv1_2
  std::vector<std::string> cipher_suites;    // TLS 1.2; empty: the allowlist in order
  std::vector<std::string> curves;           // empty: the allowlist in order
  // Server resumption.
  bool stateless_resumption = true;
  bool stateful_resumption = true;
  std::chrono::seconds session_timeout{7200};  // Envoy's (BoringSSL's) default
  // Client.
  std::string sni;
  uint32_t max_session_keys = 1;  // Envoy's default; 0 turns client resumption off
};

// Resolves SDS secret names. Returns nullptr for a name not (yet) received.
using SecretLookup = std::function<const envoy::extensions::transport_sockets::tls::v3::Secret*(
    std::string_view name)>;

// The SDS names a TLS context refers to (certificate and validation secrets), in order.
std::vector<std::string> SecretNames(
    const envoy::extensions::transport_sockets::tls::v3::CommonTlsContext& common);

// Builds the config of a listener filter chain's / cluster's TLS from Envoy's messages (as
// common/xds/tls_check.h accepts them). NotFound names the secrets not received yet;
// InvalidArgument anything else (a secret of the wrong kind, say).
absl::StatusOr<ContextConfig> ServerConfigFromProto(
    const envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext& ctx,
    const SecretLookup& secrets);
absl::StatusOr<ContextConfig> ClientConfigFromProto(
    const envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext& ctx,
    const SecretLookup& secrets);

// 80 bytes of TLS session ticket key material (name, HMAC and AES keys). Sharing one set
// across the contexts a store rebuilds keeps resumption working across certificate rotation.
using TicketKeys = std::string;
TicketKeys NewTicketKeys();

class Context {
 public:
  // `clock` gives the time certificates are verified at (a fake one in tests) and must outlive
  // the context. `ticket_keys`, when set, must hold 80 bytes.
  static absl::StatusOr<std::shared_ptr<const Context>> Create(
      const ContextConfig& config, const Clock& clock, const TicketKeys* ticket_keys = nullptr);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  Role role() const;
  // Increases with every context created in this process: which one a connection used.
  uint64_t id() const;
  // The own certificate, when there is one.
  const std::optional<CertificateInfo>& certificate() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  explicit Context(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// What the handshake established about the peer.
struct PeerInfo {
  bool presented_certificate = false;
  bool verified = false;  // chain and SANs checked against the context's settings
  CertificateInfo leaf;   // valid when presented_certificate
  std::string spiffe_id;  // leaf.spiffe_id, for RBAC and x-forwarded-client-cert
};

class Engine {
 public:
  // `sni` overrides the context's (a client per upstream host); empty keeps it.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(std::shared_ptr<const Context> context,
                                                        std::string_view sni = "");
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  enum class Result {
    kOk,        // progress made (or the handshake is complete)
    kWantRead,  // needs more ciphertext from the peer
    kClosed,    // the peer sent close_notify
    kError,     // failed: error() says why; the connection is over
  };

  // --- Network side ---
  // Bytes read from the socket.
  void FeedCiphertext(std::string_view bytes);
  // The socket reached end of stream; a later Read reports kClosed only after close_notify.
  void FeedEof();
  // Bytes to send to the peer (handshake messages, records, alerts), appended to `out`.
  size_t pending_ciphertext() const;
  void TakeCiphertext(std::string* out);

  // --- Application side ---
  // Drives the handshake. kOk once complete. With TLS 1.3 a client completes before the server
  // has judged its certificate; a refusal then arrives as an alert on the next Read.
  Result Handshake();
  // Appends available plaintext to `out` (also processes post-handshake messages such as
  // session tickets). kOk when bytes were appended, kWantRead when none are available.
  Result Read(std::string* out);
  // Encrypts all of `data` (drives the handshake first; kWantRead and nothing consumed while it
  // is not complete).
  Result Write(std::string_view data);
  // Queues close_notify.
  void Shutdown();

  bool handshake_complete() const;
  const std::string& error() const;
  const Context& context() const;

  // --- After the handshake ---
  std::string_view alpn() const;     // "" when none was negotiated
  std::string_view version() const;  // "TLSv1.3", "TLSv1.2"
  std::string_view cipher() const;   // e.g. "TLS_AES_128_GCM_SHA256"
  bool resumed() const;
  // Server: the SNI the client sent ("" without one). Client: the SNI it sent.
  std::string_view server_name() const;
  const PeerInfo& peer() const;
  // The certificates the peer sent, leaf first, as PEM (computed on demand).
  std::string PeerChainPem() const;

  struct Impl;

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The TLS contexts of a proxy, by key (a listener filter chain, a cluster), kept current with
// the SDS secrets they name. A secret update rebuilds every context that uses it: connections
// started afterwards get the new context, established ones keep the one they started with. A
// rebuild that fails keeps the previous context and reports why (the update's NACK).
class ContextStore {
 public:
  explicit ContextStore(const Clock& clock);

  // An SDS update: `updated` secrets (added or changed) and `removed` names. Removing a secret
  // keeps the contexts already built from it; contexts that need it and were never built stay
  // pending. InvalidArgument names each context that could not be rebuilt and why.
  absl::Status UpdateSecrets(
      const std::vector<envoy::extensions::transport_sockets::tls::v3::Secret>& updated,
      const std::vector<std::string>& removed = {});

  // Sets the TLS of `key`. OK also when secrets are missing (the context is then pending and
  // Get returns the previous one, or nullptr); InvalidArgument when the config or the material
  // is unusable (the previous context stays).
  absl::Status SetServer(
      const std::string& key,
      const envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext& ctx);
  absl::Status SetClient(
      const std::string& key,
      const envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext& ctx);
  void Remove(const std::string& key);

  // The context a new connection of `key` uses; nullptr while it is pending.
  std::shared_ptr<const Context> Get(const std::string& key) const;
  // Secrets `key` waits for (empty when its context is current).
  std::vector<std::string> Missing(const std::string& key) const;
  // Every secret name a registered context refers to (what to subscribe to over SDS).
  std::set<std::string> ReferencedSecrets() const;

 private:
  struct Entry {
    bool server = true;
    envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext downstream;
    envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext upstream;
    std::vector<std::string> secret_names;
    std::vector<std::string> missing;
    std::shared_ptr<const Context> context;
  };
  // Rebuilds `e` from the current secrets; the previous context stays on failure.
  absl::Status BuildLocked(Entry& e);
  absl::Status SetLocked(const std::string& key, Entry e);

  const Clock& clock_;
  const TicketKeys ticket_keys_;
  mutable std::mutex mu_;
  std::map<std::string, envoy::extensions::transport_sockets::tls::v3::Secret, std::less<>>
      secrets_;
  std::map<std::string, Entry, std::less<>> entries_;
};

}  // namespace weft::tls
