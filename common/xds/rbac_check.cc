#include "common/xds/rbac_check.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/strings.h"
#include "common/xds/cidr.h"
#include "common/xds/matcher_validate.h"
#include "common/xds/unknown_fields.h"

namespace weft::xds {
namespace {

using Scope = ValidationErrors::Scope;
using envoy::config::rbac::v3::Permission;
using envoy::config::rbac::v3::Policy;
using envoy::config::rbac::v3::Principal;
using envoy::config::rbac::v3::RBAC;

std::string Indexed(std::string_view field, int i) { return absl::StrCat(Sv(field), "[", i, "]"); }

void CheckCidr(const envoy::config::core::v3::CidrRange& range, std::string_view field,
               ValidationErrors* errors) {
  Scope s(errors, field);
  CidrRange::Create(range, errors);
}

void CheckPath(const envoy::type::matcher::v3::PathMatcher& m, ValidationErrors* errors) {
  Scope s(errors, "url_path");
  if (!m.has_path()) {
    errors->AddAt("path", "must be set");
    return;
  }
  Scope ps(errors, "path");
  ValidateStringMatcher(m.path(), errors);
}

// Envoy declares `any` as `bool any = 3 [(validate.rules).bool.const = true]`.
void CheckAny(bool any, ValidationErrors* errors) {
  if (!any) errors->AddAt("any", "must be true when set");
}

void Unsupported(std::string_view field, ValidationErrors* errors) {
  errors->AddAt(field, "is not supported by weft-proxy's RBAC filter");
}

template <typename Items, typename Check>
void CheckSet(const Items& items, std::string_view field, Check check, ValidationErrors* errors) {
  Scope s(errors, field);
  if (items.empty()) errors->Add("must not be empty");
  for (int i = 0; i < items.size(); ++i) {
    Scope is(errors, Indexed("", i));
    check(items.Get(i), errors);
  }
}

void CheckPermission(const Permission& p, ValidationErrors* errors) {
  switch (p.rule_case()) {
    case Permission::kAndRules:
      CheckSet(p.and_rules().rules(), "and_rules.rules", CheckPermission, errors);
      break;
    case Permission::kOrRules:
      CheckSet(p.or_rules().rules(), "or_rules.rules", CheckPermission, errors);
      break;
    case Permission::kAny:
      CheckAny(p.any(), errors);
      break;
    case Permission::kHeader: {
      Scope s(errors, "header");
      ValidateHeaderMatcher(p.header(), errors);
      break;
    }
    case Permission::kUrlPath:
      CheckPath(p.url_path(), errors);
      break;
    case Permission::kDestinationIp:
      CheckCidr(p.destination_ip(), "destination_ip", errors);
      break;
    case Permission::kDestinationPort:
      if (p.destination_port() > 65535) {
        errors->AddAt("destination_port",
                      absl::StrCat("must be at most 65535, got ", p.destination_port()));
      }
      break;
    case Permission::kDestinationPortRange: {
      // Envoy's bounds: start and end within 0..65536, start < end (end is exclusive).
      const auto& r = p.destination_port_range();
      if (r.start() < 0 || r.start() > 65536 || r.end() < 0 || r.end() > 65536 ||
          r.start() >= r.end()) {
        errors->AddAt(
            "destination_port_range",
            absl::StrCat("needs 0 <= start < end <= 65536, got [", r.start(), ", ", r.end(), ")"));
      }
      break;
    }
    case Permission::kNotRule: {
      Scope s(errors, "not_rule");
      CheckPermission(p.not_rule(), errors);
      break;
    }
    case Permission::kRequestedServerName: {
      Scope s(errors, "requested_server_name");
      ValidateStringMatcher(p.requested_server_name(), errors);
      break;
    }
    case Permission::kMetadata:
      Unsupported("metadata", errors);
      break;
    case Permission::kMatcher:
      Unsupported("matcher", errors);
      break;
    case Permission::kUriTemplate:
      Unsupported("uri_template", errors);
      break;
    case Permission::RULE_NOT_SET:
      errors->Add(
          "one of and_rules, or_rules, any, header, url_path, destination_ip, destination_port, "
          "destination_port_range, not_rule or requested_server_name must be set");
      break;
  }
}

void CheckPrincipal(const Principal& p, ValidationErrors* errors) {
  switch (p.identifier_case()) {
    case Principal::kAndIds:
      CheckSet(p.and_ids().ids(), "and_ids.ids", CheckPrincipal, errors);
      break;
    case Principal::kOrIds:
      CheckSet(p.or_ids().ids(), "or_ids.ids", CheckPrincipal, errors);
      break;
    case Principal::kAny:
      CheckAny(p.any(), errors);
      break;
    case Principal::kAuthenticated:
      if (p.authenticated().has_principal_name()) {
        Scope s(errors, "authenticated.principal_name");
        ValidateStringMatcher(p.authenticated().principal_name(), errors);
      }
      break;
    case Principal::kSourceIp:
      CheckCidr(p.source_ip(), "source_ip", errors);
      break;
    case Principal::kDirectRemoteIp:
      CheckCidr(p.direct_remote_ip(), "direct_remote_ip", errors);
      break;
    case Principal::kRemoteIp:
      CheckCidr(p.remote_ip(), "remote_ip", errors);
      break;
    case Principal::kHeader: {
      Scope s(errors, "header");
      ValidateHeaderMatcher(p.header(), errors);
      break;
    }
    case Principal::kUrlPath:
      CheckPath(p.url_path(), errors);
      break;
    case Principal::kNotId: {
      Scope s(errors, "not_id");
      CheckPrincipal(p.not_id(), errors);
      break;
    }
    case Principal::kMetadata:
      Unsupported("metadata", errors);
      break;
    case Principal::IDENTIFIER_NOT_SET:
      errors->Add(
          "one of and_ids, or_ids, any, authenticated, source_ip, direct_remote_ip, remote_ip, "
          "header, url_path or not_id must be set");
      break;
  }
}

void CheckPolicy(const Policy& policy, ValidationErrors* errors) {
  // Envoy requires at least one of each (min_items: 1): an empty list would match nothing.
  CheckSet(policy.permissions(), "permissions", CheckPermission, errors);
  CheckSet(policy.principals(), "principals", CheckPrincipal, errors);
}

}  // namespace

void CheckRbacRules(const RBAC& rules, ValidationErrors* errors) {
  if (!RBAC::Action_IsValid(rules.action())) {
    errors->AddAt("action", absl::StrCat("unknown value ", rules.action()));
  }
  if (rules.has_audit_logging_options()) {
    const auto& audit = rules.audit_logging_options();
    // Audit loggers are not implemented; an empty block configures nothing.
    if (audit.audit_condition() != RBAC::AuditLoggingOptions::NONE ||
        audit.logger_configs_size() > 0) {
      Unsupported("audit_logging_options", errors);
    }
  }
  for (const auto& [name, policy] : rules.policies()) {
    Scope s(errors, absl::StrCat("policies[\"", name, "\"]"));
    CheckPolicy(policy, errors);
  }
}

void CheckRbacFilter(const envoy::extensions::filters::http::rbac::v3::RBAC& config,
                     ValidationErrors* errors) {
  CheckNoUnknownFields(config, errors);
  if (config.has_rules()) {
    Scope s(errors, "rules");
    CheckRbacRules(config.rules(), errors);
  }
  if (config.has_shadow_rules()) {
    Scope s(errors, "shadow_rules");
    CheckRbacRules(config.shadow_rules(), errors);
  }
}

}  // namespace weft::xds
