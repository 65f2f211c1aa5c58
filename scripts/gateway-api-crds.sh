#!/bin/sh
# Regenerates deploy/gateway-api-crds/standard-install.yaml: the Gateway API Standard channel CRDs
# of one release, concatenated unchanged, from a checkout (or bare clone) of
# kubernetes-sigs/gateway-api. Usage: scripts/gateway-api-crds.sh GIT_DIR [TAG]
set -eu
git_dir=$1
tag=${2:-v1.6.1}
out=$(dirname "$0")/../deploy/gateway-api-crds/standard-install.yaml
{
    echo "# Gateway API $tag, Standard channel: the CRDs of kubernetes-sigs/gateway-api config/crd/standard/"
    echo "# (Apache-2.0), concatenated unchanged by scripts/gateway-api-crds.sh. Install: kubectl apply --server-side -f"
    for f in $(GIT_DIR=$git_dir git ls-tree --name-only "$tag" config/crd/standard/ | grep -v kustomization); do
        echo "---"
        GIT_DIR=$git_dir git show "$tag:$f" | sed '/^---$/d'
    done
} >"$out"
echo "wrote $out"
