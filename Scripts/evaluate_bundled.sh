#!/usr/bin/env bash
# Held-out evaluation behind the model cards: the in-range and the two out-of-range phantom sets of
# Scripts/make_heldout.py (seeds 95000.., 96000.. and 97000.., never used in training or tuning),
# 35 % of the lines, bundled models, default settings; then each study's data-consistent ceiling.
# Usage: Scripts/evaluate_bundled.sh [OUT_DIR] [extra evaluate arguments, e.g. --max-frames 20]
set -euo pipefail
out=${1:-runs/eval-bundled}; shift || true
here=$(dirname "$0")
frames=()  # the ceiling is scored on the frames evaluate scores
args=("$@"); for i in "${!args[@]}"; do [ "${args[$i]}" != --max-frames ] || frames=(--max-frames "${args[$((i + 1))]}"); done
sets="in-range out-of-range out-of-range-2"
for set in $sets; do [ -d "runs/heldout/$set" ] || python "$here/make_heldout.py" runs/heldout; done
for set in $sets; do
  perfgen-sr evaluate --data "runs/heldout/$set" --out "$out/$set" --fraction 0.35 "$@"
  python "$here/oracle_ceiling.py" "runs/heldout/$set" --fraction 0.35 "${frames[@]}" > "$out/$set/ceiling.md"
done
