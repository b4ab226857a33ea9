#include "common/xds/tls_check.h"

#include <algorithm>
#include <atomic>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/strings.h"
#include "common/xds/matcher_validate.h"
#include "google/protobuf/duration.pb.h"

namespace weft::xds {
namespace {

using Scope = ValidationErrors::Scope;
using envoy::config::core::v3::DataSource;
using envoy::extensions::transport_sockets::tls::v3::CertificateValidationContext;
using envoy::extensions::transport_sockets::tls::v3::CommonTlsContext;
using envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext;
using envoy::extensions::transport_sockets::tls::v3::SdsSecretConfig;
using envoy::extensions::transport_sockets::tls::v3::Secret;
using envoy::extensions::transport_sockets::tls::v3::SubjectAltNameMatcher;
using envoy::extensions::transport_sockets::tls::v3::TlsCertificate;
using envoy::extensions::transport_sockets::tls::v3::TlsParameters;
using envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;

std::atomic<SecretMaterialCheck> g_material_check{nullptr};

std::string Indexed(std::string_view field, size_t i) {
  return absl::StrCat(Sv(field), "[", i, "]");
}

template <size_t N>
bool Contains(const std::string_view (&list)[N], std::string_view s) {
  return std::find(std::begin(list), std::end(list), s) != std::end(list);
}
template <size_t N>
std::string JoinList(const std::string_view (&list)[N]) {
  std::vector<std::string> parts(std::begin(list), std::end(list));
  return absl::StrJoin(parts, ", ");
}

struct PemBlock {
  std::string label;
  std::string der;
};

// RFC 7468 text encoding: blocks between "-----BEGIN L-----" and "-----END L-----", base64
// inside. Text outside blocks is allowed (OpenSSL skips it; `openssl pkcs12` writes "Bag
// Attributes" lines there). Returns an error message, or empty with the blocks in `out`.
std::string ParsePem(std::string_view text, std::vector<PemBlock>* out) {
  constexpr std::string_view kBegin = "-----BEGIN ";
  constexpr std::string_view kEnd = "-----END ";
  constexpr std::string_view kDashes = "-----";
  size_t pos = 0;
  while (true) {
    size_t begin = text.find(kBegin, pos);
    if (begin == std::string_view::npos) break;
    size_t label_start = begin + kBegin.size();
    size_t label_end = text.find(kDashes, label_start);
    if (label_end == std::string_view::npos) return "unterminated PEM BEGIN line";
    std::string label(text.substr(label_start, label_end - label_start));
    size_t body_start = label_end + kDashes.size();
    std::string end_line = absl::StrCat(Sv(kEnd), label, Sv(kDashes));
    size_t end = text.find(end_line, body_start);
    if (end == std::string_view::npos) {
      return absl::StrCat("PEM block \"", label, "\" has no \"", end_line, "\" line");
    }
    std::string body;
    for (char c : text.substr(body_start, end - body_start)) {
      if (c != '\n' && c != '\r' && c != ' ' && c != '\t') body.push_back(c);
    }
    if (body.find(':') != std::string::npos) {
      // RFC 1421 headers ("Proc-Type: 4,ENCRYPTED"): an encrypted legacy key.
      return absl::StrCat("PEM block \"", label,
                          "\" has headers (an encrypted key?); weft takes unencrypted PEM only");
    }
    std::string der;
    if (body.empty() || !absl::Base64Unescape(body, &der)) {
      return absl::StrCat("PEM block \"", label, "\" is not valid base64");
    }
    // Every object these fields carry (certificates, keys) is a DER SEQUENCE.
    if (der.size() < 2 || static_cast<unsigned char>(der[0]) != 0x30) {
      return absl::StrCat("PEM block \"", label, "\" does not hold a DER structure");
    }
    out->push_back(PemBlock{std::move(label), std::move(der)});
    pos = end + end_line.size();
  }
  if (out->empty()) return "no PEM block found (expected -----BEGIN ...-----)";
  return "";
}

// The inline text of a DataSource, or nullptr when it is not inline (other specifiers are
// refused by the supported-fields table with their own path).
const std::string* InlineText(const DataSource& ds) {
  if (ds.has_inline_string()) return &ds.inline_string();
  if (ds.has_inline_bytes()) return &ds.inline_bytes();
  return nullptr;
}

bool CheckPresent(bool has, const DataSource& ds, std::string_view field,
                  ValidationErrors* errors) {
  if (!has || ds.specifier_case() == DataSource::SPECIFIER_NOT_SET) {
    errors->AddAt(field, "must be set");
    return false;
  }
  // filename and environment_variable are refused by the supported-fields table (no file
  // watching): one message per mistake.
  return InlineText(ds) != nullptr;
}

void CheckCertificatesPem(const DataSource& ds, std::string_view field, ValidationErrors* errors) {
  std::vector<PemBlock> blocks;
  if (std::string e = ParsePem(*InlineText(ds), &blocks); !e.empty()) {
    errors->AddAt(field, e);
    return;
  }
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (blocks[i].label == "CERTIFICATE") continue;
    bool key = blocks[i].label.find("PRIVATE KEY") != std::string::npos;
    errors->AddAt(
        field, absl::StrCat("PEM block ", i, " is \"", blocks[i].label, "\", expected CERTIFICATE",
                            key ? " (a private key does not belong here)" : ""));
  }
}

void CheckPrivateKeyPem(const DataSource& ds, std::string_view field, ValidationErrors* errors) {
  std::vector<PemBlock> blocks;
  if (std::string e = ParsePem(*InlineText(ds), &blocks); !e.empty()) {
    errors->AddAt(field, e);
    return;
  }
  int keys = 0;
  for (const PemBlock& b : blocks) {
    if (b.label == "PRIVATE KEY" || b.label == "EC PRIVATE KEY" || b.label == "RSA PRIVATE KEY") {
      ++keys;
    } else if (b.label == "ENCRYPTED PRIVATE KEY") {
      errors->AddAt(field,
                    "is encrypted; weft takes unencrypted keys only (password is not "
                    "supported)");
      return;
    } else if (b.label != "EC PARAMETERS") {  // `openssl ecparam -genkey` writes them first
      errors->AddAt(
          field, absl::StrCat("unexpected PEM block \"", b.label, "\"; expected one PRIVATE KEY"));
    }
  }
  if (keys != 1) {
    errors->AddAt(field, absl::StrCat("must hold exactly one private key, found ", keys));
  }
}

void CheckTlsCertificate(const TlsCertificate& tc, ValidationErrors* errors) {
  if (CheckPresent(tc.has_certificate_chain(), tc.certificate_chain(), "certificate_chain",
                   errors)) {
    CheckCertificatesPem(tc.certificate_chain(), "certificate_chain", errors);
  }
  if (CheckPresent(tc.has_private_key(), tc.private_key(), "private_key", errors)) {
    CheckPrivateKeyPem(tc.private_key(), "private_key", errors);
  }
}

// The SAN kinds data-plane/tls reads; OTHER_NAME would need the oid's value syntax.
void CheckSanMatcher(const SubjectAltNameMatcher& m, ValidationErrors* errors) {
  switch (m.san_type()) {
    case SubjectAltNameMatcher::DNS:
    case SubjectAltNameMatcher::URI:
    case SubjectAltNameMatcher::EMAIL:
    case SubjectAltNameMatcher::IP_ADDRESS:
      break;
    case SubjectAltNameMatcher::SAN_TYPE_UNSPECIFIED:
      errors->AddAt("san_type", "must be set (DNS, URI, EMAIL or IP_ADDRESS)");
      break;
    case SubjectAltNameMatcher::OTHER_NAME:
      break;  // refused by the supported-fields table, as is `oid`
    default:
      errors->AddAt("san_type", absl::StrCat("unknown value ", m.san_type()));
      break;
  }
  if (!m.has_matcher()) {
    errors->AddAt("matcher", "must be set");
  } else {
    Scope s(errors, "matcher");
    ValidateStringMatcher(m.matcher(), errors);
  }
}

// `require_trusted_ca`: false only for the default half of a combined context, whose CA comes
// from the SDS secret.
void CheckValidationContext(const CertificateValidationContext& v, bool require_trusted_ca,
                            ValidationErrors* errors) {
  if (require_trusted_ca) {
    if (CheckPresent(v.has_trusted_ca(), v.trusted_ca(), "trusted_ca", errors)) {
      CheckCertificatesPem(v.trusted_ca(), "trusted_ca", errors);
    }
  } else if (v.has_trusted_ca()) {
    errors->AddAt("trusted_ca",
                  "comes from validation_context_sds_secret_config in a combined validation "
                  "context; set it in that secret");
  }
  for (int i = 0; i < v.match_typed_subject_alt_names_size(); ++i) {
    Scope s(errors, Indexed("match_typed_subject_alt_names", i));
    CheckSanMatcher(v.match_typed_subject_alt_names(i), errors);
  }
  // Envoy's depth excludes the leaf (1 = leaf and one CA); 0 cannot be expressed in OpenSSL 3.
  if (v.has_max_verify_depth() &&
      (v.max_verify_depth().value() < 1 || v.max_verify_depth().value() > 100)) {
    errors->AddAt("max_verify_depth",
                  absl::StrCat("must be in 1..100, got ", v.max_verify_depth().value()));
  }
}

void CheckSdsConfig(const SdsSecretConfig& sds, ValidationErrors* errors) {
  if (sds.name().empty()) errors->AddAt("name", "must not be empty");
  // Without sds_config Envoy looks the name up among static bootstrap secrets; weft-proxy has
  // none and takes secrets from its ADS stream.
  if (!sds.has_sds_config()) errors->AddAt("sds_config", "must be set (ads: {})");
}

std::string_view VersionName(TlsParameters::TlsProtocol v) {
  switch (v) {
    case TlsParameters::TLS_AUTO:
      return "TLS_AUTO";
    case TlsParameters::TLSv1_0:
      return "TLSv1_0";
    case TlsParameters::TLSv1_1:
      return "TLSv1_1";
    case TlsParameters::TLSv1_2:
      return "TLSv1_2";
    case TlsParameters::TLSv1_3:
      return "TLSv1_3";
    default:
      return "";
  }
}

void CheckVersion(TlsParameters::TlsProtocol v, std::string_view field, ValidationErrors* errors) {
  if (v == TlsParameters::TLSv1_0 || v == TlsParameters::TLSv1_1) {
    errors->AddAt(
        field, absl::StrCat(Sv(VersionName(v)), " is refused: weft speaks TLS 1.2 and 1.3 only"));
  } else if (VersionName(v).empty()) {
    errors->AddAt(field, absl::StrCat("unknown value ", static_cast<int>(v)));
  }
}

void CheckTlsParams(const TlsParameters& p, ValidationErrors* errors) {
  CheckVersion(p.tls_minimum_protocol_version(), "tls_minimum_protocol_version", errors);
  CheckVersion(p.tls_maximum_protocol_version(), "tls_maximum_protocol_version", errors);
  if (p.tls_minimum_protocol_version() == TlsParameters::TLSv1_3 &&
      p.tls_maximum_protocol_version() == TlsParameters::TLSv1_2) {
    errors->AddAt("tls_maximum_protocol_version", "is below tls_minimum_protocol_version");
  }
  std::set<std::string> seen;
  for (int i = 0; i < p.cipher_suites_size(); ++i) {
    const std::string& s = p.cipher_suites(i);
    if (!Contains(kTls12CipherSuites, s)) {
      std::string why =
          s.rfind("TLS_", 0) == 0
              ? "TLS 1.3 suites are not configurable (all three are AEADs)"
              : absl::StrCat("allowed: ", JoinList(kTls12CipherSuites),
                             " (ECDHE with an AEAD; no CBC, RSA key exchange or SHA-1)");
      errors->AddAt(Indexed("cipher_suites", i), absl::StrCat("\"", s, "\" is refused; ", why));
    } else if (!seen.insert(s).second) {
      errors->AddAt(Indexed("cipher_suites", i), absl::StrCat("duplicate \"", s, "\""));
    }
  }
  if (p.cipher_suites_size() > 0 && seen.empty()) {
    errors->AddAt("cipher_suites", "leaves no usable TLS 1.2 suite");
  }
  for (int i = 0; i < p.ecdh_curves_size(); ++i) {
    if (!Contains(kEcdhCurves, p.ecdh_curves(i))) {
      errors->AddAt(Indexed("ecdh_curves", i),
                    absl::StrCat("\"", p.ecdh_curves(i),
                                 "\" is not supported; allowed: ", JoinList(kEcdhCurves)));
    }
  }
}

struct CommonRules {
  bool server = false;
};

void CheckCommon(const CommonTlsContext& c, const CommonRules& rules, bool* has_validation,
                 ValidationErrors* errors) {
  if (c.has_tls_params()) {
    Scope s(errors, "tls_params");
    CheckTlsParams(c.tls_params(), errors);
  }
  for (int i = 0; i < c.tls_certificates_size(); ++i) {
    Scope s(errors, Indexed("tls_certificates", i));
    CheckTlsCertificate(c.tls_certificates(i), errors);
  }
  for (int i = 0; i < c.tls_certificate_sds_secret_configs_size(); ++i) {
    Scope s(errors, Indexed("tls_certificate_sds_secret_configs", i));
    CheckSdsConfig(c.tls_certificate_sds_secret_configs(i), errors);
  }
  int certificates = c.tls_certificates_size() + c.tls_certificate_sds_secret_configs_size();
  if (certificates > 1) {
    errors->AddAt("tls_certificates",
                  absl::StrCat("has ", certificates,
                               " certificates (inline and by SDS name); weft-proxy serves one "
                               "certificate per context"));
  } else if (certificates == 0 && rules.server) {
    errors->AddAt("tls_certificates",
                  "a server needs a certificate: set tls_certificates or "
                  "tls_certificate_sds_secret_configs");
  }
  *has_validation = true;
  switch (c.validation_context_type_case()) {
    case CommonTlsContext::kValidationContext: {
      Scope s(errors, "validation_context");
      CheckValidationContext(c.validation_context(), /*require_trusted_ca=*/true, errors);
      break;
    }
    case CommonTlsContext::kValidationContextSdsSecretConfig: {
      Scope s(errors, "validation_context_sds_secret_config");
      CheckSdsConfig(c.validation_context_sds_secret_config(), errors);
      break;
    }
    case CommonTlsContext::kCombinedValidationContext: {
      Scope s(errors, "combined_validation_context");
      const auto& combined = c.combined_validation_context();
      if (combined.has_default_validation_context()) {
        Scope d(errors, "default_validation_context");
        CheckValidationContext(combined.default_validation_context(),
                               /*require_trusted_ca=*/false, errors);
      }
      if (!combined.has_validation_context_sds_secret_config()) {
        errors->AddAt("validation_context_sds_secret_config", "must be set");
      } else {
        Scope d(errors, "validation_context_sds_secret_config");
        CheckSdsConfig(combined.validation_context_sds_secret_config(), errors);
      }
      break;
    }
    case CommonTlsContext::kValidationContextCertificateProviderInstance:
      break;  // refused by the supported-fields table
    case CommonTlsContext::VALIDATION_CONTEXT_TYPE_NOT_SET:
      *has_validation = false;
      break;
  }
  std::set<std::string> alpn;
  for (int i = 0; i < c.alpn_protocols_size(); ++i) {
    const std::string& p = c.alpn_protocols(i);
    if (!Contains(kAlpnProtocols, p)) {
      errors->AddAt(
          Indexed("alpn_protocols", i),
          absl::StrCat("\"", p, "\" is not supported; allowed: ", JoinList(kAlpnProtocols)));
    } else if (!alpn.insert(p).second) {
      errors->AddAt(Indexed("alpn_protocols", i), absl::StrCat("duplicate \"", p, "\""));
    }
  }
}

// RFC 6066: SNI carries a DNS host name, never an IP literal.
void CheckSni(const std::string& sni, ValidationErrors* errors) {
  if (sni.empty()) return;
  if (sni.size() > 253) {
    errors->AddAt("sni", "is longer than 253 characters");
    return;
  }
  bool only_digits_dots = true;
  for (char c : sni) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_';
    if (!ok) {
      errors->AddAt(
          "sni", absl::StrCat("\"", sni, "\" is not a DNS name (letters, digits, '-', '.' only)"));
      return;
    }
    if (c != '.' && (c < '0' || c > '9')) only_digits_dots = false;
  }
  if (only_digits_dots) {
    errors->AddAt("sni", absl::StrCat("\"", sni,
                                      "\" is an IP address; SNI carries DNS names only (RFC "
                                      "6066)"));
  }
}

}  // namespace

void CheckSecret(const Secret& secret, ValidationErrors* errors) {
  if (secret.name().empty()) errors->AddAt("name", "must not be empty");
  size_t before = errors->size();
  switch (secret.type_case()) {
    case Secret::kTlsCertificate: {
      Scope s(errors, "tls_certificate");
      CheckTlsCertificate(secret.tls_certificate(), errors);
      break;
    }
    case Secret::kValidationContext: {
      Scope s(errors, "validation_context");
      CheckValidationContext(secret.validation_context(), /*require_trusted_ca=*/true, errors);
      break;
    }
    case Secret::kSessionTicketKeys:
    case Secret::kGenericSecret:
      break;  // refused by the supported-fields table
    case Secret::TYPE_NOT_SET:
      errors->Add("one of tls_certificate or validation_context must be set");
      return;
  }
  // Deep checks only on well-formed input, so one mistake gives one message.
  SecretMaterialCheck check = g_material_check.load();
  if (check != nullptr && errors->size() == before) check(secret, errors);
}

void CheckDownstreamTlsContext(const DownstreamTlsContext& ctx, ValidationErrors* errors) {
  bool has_validation = false;
  {
    Scope s(errors, "common_tls_context");
    CheckCommon(ctx.common_tls_context(), CommonRules{.server = true}, &has_validation, errors);
  }
  if (!ctx.has_common_tls_context()) {
    errors->AddAt("common_tls_context", "must be set (a server needs a certificate)");
  }
  if (ctx.require_client_certificate().value() && !has_validation) {
    errors->AddAt("require_client_certificate",
                  "needs a validation context in common_tls_context to verify client "
                  "certificates against");
  }
  if (ctx.has_session_timeout()) {
    const auto& d = ctx.session_timeout();
    if (d.seconds() < 0 || d.nanos() < 0 || (d.seconds() == 0 && d.nanos() == 0)) {
      errors->AddAt("session_timeout", "must be greater than 0");
    } else if (d.seconds() > 7 * 24 * 3600) {
      errors->AddAt("session_timeout", "must be at most 7 days (RFC 8446 ticket lifetime)");
    }
  }
}

void CheckUpstreamTlsContext(const UpstreamTlsContext& ctx, ValidationErrors* errors) {
  bool has_validation = false;
  {
    Scope s(errors, "common_tls_context");
    CheckCommon(ctx.common_tls_context(), CommonRules{.server = false}, &has_validation, errors);
    if (!has_validation) {
      errors->AddAt("validation_context",
                    "must be set: weft-proxy verifies every upstream certificate (one nobody "
                    "checks authenticates nothing)");
    }
  }
  CheckSni(ctx.sni(), errors);
}

void InstallSecretMaterialCheck(SecretMaterialCheck check) { g_material_check.store(check); }

}  // namespace weft::xds
