#!/usr/bin/python3
"""Check that Weft's hand-written Envoy xDS .proto subset matches upstream.

Usage: check-proto-subset.py UPSTREAM_DEPS_DIR [--proto-dir DIR] [--protoc PATH]

UPSTREAM_DEPS_DIR holds envoy-api/, xds/, googleapis/ and protoc-gen-validate/
(e.g. the deps/ directory of the @grpc/grpc-js-xds npm package).

Every message, enum and service defined in our subset (files under
proto/envoy, proto/google and proto/xds) must exist upstream with the same
full name in the same file, and every field / enum value / RPC we define must
match upstream exactly (name, number, type, label, type_name, oneof, streaming).
Exit status: 0 when everything matches, 1 on any mismatch, 2 on usage/tool errors.
"""

import argparse
import os
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2

FDP = descriptor_pb2.FieldDescriptorProto
TYPE_NAMES = {v: k for k, v in FDP.Type.items()}
LABEL_NAMES = {v: k for k, v in FDP.Label.items()}
SUBSET_ROOTS = ("envoy", "google", "xds")


def run_protoc(protoc, includes, files, out):
    cmd = [protoc] + ["-I" + i for i in includes] + [
        "--include_imports", "--descriptor_set_out=" + out] + files
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write("protoc failed: %s\n%s" % (" ".join(cmd), res.stderr))
        sys.exit(2)
    fds = descriptor_pb2.FileDescriptorSet()
    with open(out, "rb") as f:
        fds.ParseFromString(f.read())
    return fds


def index(fds, only_files=None):
    """Return {full_name: (kind, file_name, descriptor)} for messages/enums/services."""
    out = {}

    def add_msg(prefix, m, fname):
        full = prefix + "." + m.name
        out[full] = ("message", fname, m)
        for e in m.enum_type:
            out[full + "." + e.name] = ("enum", fname, e)
        for n in m.nested_type:
            add_msg(full, n, fname)

    for fd in fds.file:
        if only_files is not None and fd.name not in only_files:
            continue
        prefix = "." + fd.package if fd.package else ""
        for m in fd.message_type:
            add_msg(prefix, m, fd.name)
        for e in fd.enum_type:
            out[prefix + "." + e.name] = ("enum", fd.name, e)
        for s in fd.service:
            out[prefix + "." + s.name] = ("service", fd.name, s)
    return out


def oneof_name(msg, field):
    if field.HasField("oneof_index"):
        return msg.oneof_decl[field.oneof_index].name
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("upstream")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--proto-dir", default=os.path.join(here, "..", "proto"))
    ap.add_argument("--protoc", default="protoc")
    ap.add_argument("--wkt-include", default="/usr/include")
    args = ap.parse_args()

    proto_dir = os.path.normpath(args.proto_dir)
    ours_files = []
    for root in SUBSET_ROOTS:
        base = os.path.join(proto_dir, root)
        for dirpath, _, names in os.walk(base):
            for n in names:
                if n.endswith(".proto"):
                    ours_files.append(os.path.relpath(os.path.join(dirpath, n), proto_dir))
    ours_files.sort()
    if not ours_files:
        sys.stderr.write("no .proto files found under %s\n" % proto_dir)
        return 2

    up_roots = [os.path.join(args.upstream, d) for d in
                ("envoy-api", "xds", "googleapis", "protoc-gen-validate")]
    for d in up_roots:
        if not os.path.isdir(d):
            sys.stderr.write("missing upstream directory %s\n" % d)
            return 2

    # Upstream counterpart of each of our files (same relative path).
    up_files = []
    for f in ours_files:
        if any(os.path.exists(os.path.join(r, f)) for r in up_roots):
            up_files.append(f)

    with tempfile.TemporaryDirectory() as tmp:
        ours = run_protoc(args.protoc, [proto_dir, args.wkt_include], ours_files,
                          os.path.join(tmp, "ours.pb"))
        ups = run_protoc(args.protoc, up_roots + [args.wkt_include], up_files,
                         os.path.join(tmp, "upstream.pb"))

    mine = index(ours, only_files=set(ours_files))
    theirs = index(ups)
    errors = []
    n_msgs = n_fields = n_enums = n_values = n_svcs = n_rpcs = 0

    for full, (kind, fname, d) in sorted(mine.items()):
        if full not in theirs:
            errors.append("%s %s (%s): not found upstream" % (kind, full, fname))
            continue
        ukind, ufname, u = theirs[full]
        if ukind != kind:
            errors.append("%s: is a %s here but a %s upstream" % (full, kind, ukind))
            continue
        if ufname != fname:
            errors.append("%s: defined in %s here but in %s upstream" % (full, fname, ufname))
        if kind == "message":
            n_msgs += 1
            if d.options.map_entry != u.options.map_entry:
                errors.append("%s: map_entry differs" % full)
            ufields = {f.name: f for f in u.field}
            seen_numbers = {}
            for f in d.field:
                n_fields += 1
                where = "%s.%s" % (full, f.name)
                if f.number in seen_numbers:
                    errors.append("%s: number %d reused" % (where, f.number))
                seen_numbers[f.number] = f.name
                uf = ufields.get(f.name)
                if uf is None:
                    errors.append("%s: field not found upstream" % where)
                    continue
                checks = [
                    ("number", f.number, uf.number),
                    ("type", TYPE_NAMES[f.type], TYPE_NAMES[uf.type]),
                    ("label", LABEL_NAMES[f.label], LABEL_NAMES[uf.label]),
                    ("type_name", f.type_name, uf.type_name),
                    ("oneof", oneof_name(d, f), oneof_name(u, uf)),
                    ("proto3_optional", f.proto3_optional, uf.proto3_optional),
                ]
                for what, a, b in checks:
                    if a != b:
                        errors.append("%s: %s is %r here but %r upstream" % (where, what, a, b))
        elif kind == "enum":
            n_enums += 1
            uvals = {v.name: v.number for v in u.value}
            for v in d.value:
                n_values += 1
                if v.name not in uvals:
                    errors.append("%s.%s: enum value not found upstream" % (full, v.name))
                elif uvals[v.name] != v.number:
                    errors.append("%s.%s: number %d here but %d upstream"
                                  % (full, v.name, v.number, uvals[v.name]))
        else:
            n_svcs += 1
            umeth = {m.name: m for m in u.method}
            for m in d.method:
                n_rpcs += 1
                where = "%s.%s" % (full, m.name)
                um = umeth.get(m.name)
                if um is None:
                    errors.append("%s: rpc not found upstream" % where)
                    continue
                for what in ("input_type", "output_type", "client_streaming", "server_streaming"):
                    a, b = getattr(m, what), getattr(um, what)
                    if a != b:
                        errors.append("%s: %s is %r here but %r upstream" % (where, what, a, b))

    for e in errors:
        print("MISMATCH: " + e)
    print("%d files, %d enums (%d values), %d services (%d rpcs)"
          % (len(ours_files), n_enums, n_values, n_svcs, n_rpcs))
    print("%d messages, %d fields checked, %d mismatches" % (n_msgs, n_fields, len(errors)))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
