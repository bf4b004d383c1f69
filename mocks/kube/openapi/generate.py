#!/usr/bin/env python3
"""Writes kubernetes.json: the OpenAPI v3 component schemas of the kinds mock-kube serves.

The schemas are Kubernetes' own (Apache-2.0), taken from the definitions that the PyPI
package kubernetes-validate ships for each release:

    pip download --no-deps -d /tmp/kv kubernetes-validate==1.37.0
    unzip -q /tmp/kv/kubernetes_validate-*.whl -d /tmp/kv/x
    python3 generate.py /tmp/kv/x/kubernetes_validate/kubernetes-json-schema/v1.33.0-local/_definitions.json

That package rewrites the API server's OpenAPI into JSON Schema; this script turns it
back into the server's OpenAPI v3 form: `#/components/schemas/` references, plain
`type` (no added `null`), no `enum`s or `required` that the package adds to the kinds'
top level, and no descriptions (they are most of the size and nothing here reads them).
The `x-kubernetes-*` extensions (patch merge keys, list types, group-version-kind) are
kept: kubectl computes its strategic merge patches from them.
"""
import json
import os
import sys

VERSION = "v1.33.0"

# The kinds mock-kube serves (src/resources.rs), the autoscaling/v1 Scale of the
# `scale` subresource, and what every document's operations refer to.
ROOTS = [
    "io.k8s.api.core.v1." + k
    for k in ["Pod", "Service", "Node", "Namespace", "Event", "ServiceAccount", "Secret", "ConfigMap"]
] + [
    "io.k8s.api.apps.v1.Deployment",
    "io.k8s.api.apps.v1.StatefulSet",
    "io.k8s.api.autoscaling.v1.Scale",
    "io.k8s.api.discovery.v1.EndpointSlice",
    "io.k8s.api.coordination.v1.Lease",
    "io.k8s.api.events.v1.Event",
    "io.k8s.api.policy.v1.PodDisruptionBudget",
] + [
    "io.k8s.api.rbac.v1." + k for k in ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]
] + [
    "io.k8s.apimachinery.pkg.apis.meta.v1." + k for k in ["Status", "DeleteOptions", "Patch"]
]


def refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v.rsplit("/", 1)[-1]
            else:
                yield from refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)


def convert(node, top=False):
    if isinstance(node, list):
        return [convert(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k in ("description", "enum", "$schema", "$id"):
            continue
        if k == "required" and top and "x-kubernetes-group-version-kind" in node:
            continue
        if k == "$ref":
            out[k] = "#/components/schemas/" + v.rsplit("/", 1)[-1]
        elif k == "type" and isinstance(v, list):
            kept = [t for t in v if t != "null"]
            out[k] = kept[0] if len(kept) == 1 else kept
        elif k == "properties":
            out[k] = {name: convert(p) for name, p in v.items()}
        else:
            out[k] = convert(v)
    return out


def main():
    defs = json.load(open(sys.argv[1]))["$defs"]
    wanted = list(ROOTS)
    # List kinds answer list requests.
    wanted += [r + "List" for r in ROOTS if r + "List" in defs]
    seen = set()
    stack = list(wanted)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(refs(defs[name]))
    schemas = {name: convert(defs[name], top=True) for name in sorted(seen)}
    out = {
        "kubernetesVersion": VERSION,
        "schemas": schemas,
    }
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "kubernetes.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"), sort_keys=True)
        f.write("\n")
    print(f"{len(schemas)} schemas", file=sys.stderr)


if __name__ == "__main__":
    main()
