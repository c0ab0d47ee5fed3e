#!/usr/bin/env bash
# Runs the whole scenario matrix on the twin 50 times (MESHCONFORM_DETERMINISM_RUNS to
# change) and fails unless every run gives identical outcomes (status and summary of
# every runtime check). The default `cargo test` runs it twice; this is the long form.
set -euo pipefail
cd "$(dirname "$0")/.."
export MESHCONFORM_DETERMINISM_RUNS="${MESHCONFORM_DETERMINISM_RUNS:-50}"
exec cargo test -p meshconform-suites --release --test twin -- \
  --ignored --exact the_matrix_runs_the_same_fifty_times --nocapture
