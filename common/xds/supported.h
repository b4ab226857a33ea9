// What weft-proxy applies, as a table of fields, and the check that holds every resource to it.
//
// The validators in validate.h check that a resource makes sense; this check makes sure that
// weft-proxy does what it says. A field that is set in a Listener, RouteConfiguration, Cluster,
// ClusterLoadAssignment or Secret and that the proxy does not apply is an error naming its path
// (the proxy NACKs the update, weft-cp refuses it at apply time), and so is a field our proto
// subset does not know, which protobuf would otherwise drop without a word. A policy, a timeout or
// a TLS setting that is accepted and not enforced leaves the operator believing it is in force.
//
// The table lives in supported.cc. Whoever makes the proxy apply a field adds it there in the
// same change; the unit test checks that every entry names a real message and field.
#pragma once

#include <string>
#include <vector>

#include "common/validation.h"
#include "google/protobuf/message.h"

namespace weft::xds {

// Records, under the current scope of `errors`, every field set in `resource` (and, through
// known typed_config Any fields, in what they carry) that weft-proxy does not apply.
void CheckSupportedFields(const google::protobuf::Message& resource, ValidationErrors* errors);

// Every "message.field" entry of the table that does not resolve against the compiled protos
// (empty when the table is consistent). For tests.
std::vector<std::string> UnresolvedSupportTableEntries();

}  // namespace weft::xds
