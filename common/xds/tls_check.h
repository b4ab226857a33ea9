// Checks of the TLS messages (envoy.extensions.transport_sockets.tls.v3) shared by weft-cp and
// weft-proxy: SDS Secrets, and the DownstreamTlsContext / UpstreamTlsContext a transport socket
// carries. What they accept is exactly what data-plane/tls builds a context from, and the
// allowlists below are the ones it configures OpenSSL with, so the two cannot drift.
//
// This file includes no crypto library (only data-plane/tls and control-plane/ca do): PEM is
// checked for structure here (armor, labels, base64, a DER SEQUENCE inside). Whether the bytes
// are a certificate, whether the key matches it, whether the key type is allowed, is checked by
// data-plane/tls, which a program installs here (InstallSecretMaterialCheck) so that
// ValidateResources runs it too: weft-cp then refuses at apply time what a proxy would NACK.
#pragma once

#include <string_view>

#include "common/validation.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb.h"

namespace weft::xds {

// TLS 1.2 suites weft accepts, in OpenSSL (= BoringSSL = Envoy) names and default preference
// order: ECDHE key exchange with an AEAD only. TLS 1.3 suites are not configurable (all three
// are AEADs), as in Envoy.
inline constexpr std::string_view kTls12CipherSuites[] = {
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
};
// Key exchange groups, in default preference order (Envoy's names; OpenSSL takes them as is).
inline constexpr std::string_view kEcdhCurves[] = {"X25519", "P-256", "P-384"};
// Application protocols an HTTP proxy can speak. Anything else would be negotiated and then
// not spoken.
inline constexpr std::string_view kAlpnProtocols[] = {"h2", "http/1.1"};
// The transport socket name Envoy registers for these contexts.
inline constexpr std::string_view kTlsTransportSocketName = "envoy.transport_sockets.tls";

// A Secret resource: name, exactly one of tls_certificate / validation_context, complete and
// well-formed PEM, then the installed material check. Errors go under the current scope.
void CheckSecret(const envoy::extensions::transport_sockets::tls::v3::Secret& secret,
                 ValidationErrors* errors);

// A listener filter chain's TLS: one server certificate (inline or by SDS name), client
// certificates verified when a validation context is set and required when
// require_client_certificate, TLS 1.2/1.3, allowed suites, curves and ALPN.
void CheckDownstreamTlsContext(
    const envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext& ctx,
    ValidationErrors* errors);

// A cluster's TLS: the server certificate is always verified (a validation context is
// required: a certificate nobody checks authenticates nothing), at most one client certificate,
// SNI a DNS name.
void CheckUpstreamTlsContext(
    const envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext& ctx,
    ValidationErrors* errors);

// The deep check of a Secret's key material, done by code that links a crypto library. Called
// by CheckSecret after the structural checks passed. Install once at start-up, before threads.
using SecretMaterialCheck = void (*)(const envoy::extensions::transport_sockets::tls::v3::Secret&,
                                     ValidationErrors*);
void InstallSecretMaterialCheck(SecretMaterialCheck check);

}  // namespace weft::xds
