// Envoy's TLS messages -> ContextConfig. Assumes what common/xds/tls_check.h accepts; still
// refuses what it cannot build rather than guess.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "data-plane/tls/tls.h"

namespace weft::tls {
namespace {

using envoy::config::core::v3::DataSource;
using envoy::extensions::transport_sockets::tls::v3::CertificateValidationContext;
using envoy::extensions::transport_sockets::tls::v3::CommonTlsContext;
using envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext;
using envoy::extensions::transport_sockets::tls::v3::Secret;
using envoy::extensions::transport_sockets::tls::v3::SubjectAltNameMatcher;
using envoy::extensions::transport_sockets::tls::v3::TlsParameters;
using envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
using envoy::type::matcher::v3::StringMatcher;

const std::string& Text(const DataSource& ds) {
  return ds.has_inline_string() ? ds.inline_string() : ds.inline_bytes();
}

std::string Describe(const SubjectAltNameMatcher& m) {
  std::string type = SubjectAltNameMatcher::SanType_Name(m.san_type());
  const StringMatcher& s = m.matcher();
  std::string how;
  switch (s.match_pattern_case()) {
    case StringMatcher::kExact:
      how = absl::StrCat("exact \"", s.exact(), "\"");
      break;
    case StringMatcher::kPrefix:
      how = absl::StrCat("prefix \"", s.prefix(), "\"");
      break;
    case StringMatcher::kSuffix:
      how = absl::StrCat("suffix \"", s.suffix(), "\"");
      break;
    case StringMatcher::kContains:
      how = absl::StrCat("contains \"", s.contains(), "\"");
      break;
    case StringMatcher::kSafeRegex:
      how = absl::StrCat("regex \"", s.safe_regex().regex(), "\"");
      break;
    default:
      how = "?";
  }
  return absl::StrCat(type, " ", how, s.ignore_case() ? " (ignoring case)" : "");
}

absl::Status AddValidation(const CertificateValidationContext& v, ContextConfig* out) {
  if (v.has_trusted_ca()) out->trusted_ca_pem = Text(v.trusted_ca());
  for (const SubjectAltNameMatcher& m : v.match_typed_subject_alt_names()) {
    SanMatcher sm{SanMatcher::Type::kUri,
                  router::StringMatcher(router::StringMatcher::Kind::kExact, "", false),
                  Describe(m)};
    switch (m.san_type()) {
      case SubjectAltNameMatcher::DNS:
        sm.type = SanMatcher::Type::kDns;
        break;
      case SubjectAltNameMatcher::URI:
        sm.type = SanMatcher::Type::kUri;
        break;
      case SubjectAltNameMatcher::EMAIL:
        sm.type = SanMatcher::Type::kEmail;
        break;
      case SubjectAltNameMatcher::IP_ADDRESS:
        sm.type = SanMatcher::Type::kIp;
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("match_typed_subject_alt_names: unsupported san_type ", m.san_type()));
    }
    ValidationErrors errors;
    auto compiled = router::StringMatcher::Compile(m.matcher(), &errors);
    if (!compiled) return errors.ToStatus("match_typed_subject_alt_names: ");
    sm.matcher = *std::move(compiled);
    out->san_matchers.push_back(std::move(sm));
  }
  if (v.has_max_verify_depth()) out->max_verify_depth = v.max_verify_depth().value();
  return absl::OkStatus();
}

// Fills what CommonTlsContext says; names of secrets not received go to `missing`.
absl::Status FromCommon(const CommonTlsContext& c, const SecretLookup& secrets,
                        std::vector<std::string>* missing, ContextConfig* out) {
  auto find = [&](const std::string& name) -> const Secret* {
    const Secret* s = secrets ? secrets(name) : nullptr;
    if (s == nullptr) missing->push_back(name);
    return s;
  };
  if (c.tls_certificates_size() + c.tls_certificate_sds_secret_configs_size() > 1) {
    return absl::InvalidArgumentError("one certificate per context");
  }
  if (c.tls_certificates_size() == 1) {
    out->certificate_chain_pem = Text(c.tls_certificates(0).certificate_chain());
    out->private_key_pem = Text(c.tls_certificates(0).private_key());
  } else if (c.tls_certificate_sds_secret_configs_size() == 1) {
    const std::string& name = c.tls_certificate_sds_secret_configs(0).name();
    if (const Secret* s = find(name)) {
      if (!s->has_tls_certificate()) {
        return absl::InvalidArgumentError(
            absl::StrCat("secret \"", name, "\" is not a tls_certificate"));
      }
      out->certificate_chain_pem = Text(s->tls_certificate().certificate_chain());
      out->private_key_pem = Text(s->tls_certificate().private_key());
    }
  }
  auto validation_secret = [&](const std::string& name) -> absl::Status {
    const Secret* s = find(name);
    if (s == nullptr) return absl::OkStatus();
    if (!s->has_validation_context()) {
      return absl::InvalidArgumentError(
          absl::StrCat("secret \"", name, "\" is not a validation_context"));
    }
    return AddValidation(s->validation_context(), out);
  };
  switch (c.validation_context_type_case()) {
    case CommonTlsContext::kValidationContext:
      if (auto s = AddValidation(c.validation_context(), out); !s.ok()) return s;
      break;
    case CommonTlsContext::kValidationContextSdsSecretConfig:
      if (auto s = validation_secret(c.validation_context_sds_secret_config().name()); !s.ok()) {
        return s;
      }
      break;
    case CommonTlsContext::kCombinedValidationContext: {
      // Envoy merges the two: matchers from both, the CA from the secret.
      const auto& combined = c.combined_validation_context();
      if (auto s = AddValidation(combined.default_validation_context(), out); !s.ok()) return s;
      if (auto s = validation_secret(combined.validation_context_sds_secret_config().name());
          !s.ok()) {
        return s;
      }
      break;
    }
    case CommonTlsContext::VALIDATION_CONTEXT_TYPE_NOT_SET:
      break;
    default:
      return absl::InvalidArgumentError("certificate provider instances are not supported");
  }
  const TlsParameters& p = c.tls_params();
  out->tls13_only = p.tls_minimum_protocol_version() == TlsParameters::TLSv1_3;
  out->tls12_only = p.tls_maximum_protocol_version() == TlsParameters::TLSv1_2;
  out->cipher_suites.assign(p.cipher_suites().begin(), p.cipher_suites().end());
  out->curves.assign(p.ecdh_curves().begin(), p.ecdh_curves().end());
  out->alpn.assign(c.alpn_protocols().begin(), c.alpn_protocols().end());
  return absl::OkStatus();
}

absl::Status Missing(const std::vector<std::string>& missing) {
  return absl::NotFoundError(
      absl::StrCat("waiting for SDS secrets: ", absl::StrJoin(missing, ", ")));
}

}  // namespace

std::vector<std::string> SecretNames(const CommonTlsContext& c) {
  std::vector<std::string> names;
  for (const auto& sds : c.tls_certificate_sds_secret_configs()) names.push_back(sds.name());
  if (c.has_validation_context_sds_secret_config()) {
    names.push_back(c.validation_context_sds_secret_config().name());
  }
  if (c.has_combined_validation_context()) {
    names.push_back(c.combined_validation_context().validation_context_sds_secret_config().name());
  }
  return names;
}

absl::StatusOr<ContextConfig> ServerConfigFromProto(const DownstreamTlsContext& ctx,
                                                    const SecretLookup& secrets) {
  ContextConfig config;
  config.role = Role::kServer;
  std::vector<std::string> missing;
  if (auto s = FromCommon(ctx.common_tls_context(), secrets, &missing, &config); !s.ok()) return s;
  if (!missing.empty()) return Missing(missing);
  if (config.certificate_chain_pem.empty()) {
    return absl::InvalidArgumentError("a server needs a certificate");
  }
  config.require_client_certificate = ctx.require_client_certificate().value();
  if (config.require_client_certificate && config.trusted_ca_pem.empty()) {
    return absl::InvalidArgumentError("require_client_certificate needs a trusted CA");
  }
  config.stateless_resumption = !ctx.disable_stateless_session_resumption();
  config.stateful_resumption = !ctx.disable_stateful_session_resumption();
  if (ctx.has_session_timeout()) {
    config.session_timeout =
        std::chrono::seconds(std::max<int64_t>(1, ctx.session_timeout().seconds()));
  }
  return config;
}

absl::StatusOr<ContextConfig> ClientConfigFromProto(const UpstreamTlsContext& ctx,
                                                    const SecretLookup& secrets) {
  ContextConfig config;
  config.role = Role::kClient;
  std::vector<std::string> missing;
  if (auto s = FromCommon(ctx.common_tls_context(), secrets, &missing, &config); !s.ok()) return s;
  if (!missing.empty()) return Missing(missing);
  if (config.trusted_ca_pem.empty()) {
    return absl::InvalidArgumentError("upstream TLS needs a trusted CA to verify the server");
  }
  config.sni = ctx.sni();
  if (ctx.has_max_session_keys()) config.max_session_keys = ctx.max_session_keys().value();
  return config;
}

}  // namespace weft::tls
