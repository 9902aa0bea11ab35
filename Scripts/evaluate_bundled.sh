#!/usr/bin/env bash
# Held-out evaluation behind the model cards: the in-range and out-of-range phantom sets of
# Scripts/make_heldout.py (seeds 95000.. and 96000.., never used in training or tuning), 35 % of
# the lines, bundled models, default settings.
# Usage: Scripts/evaluate_bundled.sh [OUT_DIR] [extra evaluate arguments, e.g. --max-frames 20]
set -euo pipefail
out=${1:-runs/eval-bundled}; shift || true
here=$(dirname "$0")
[ -d runs/heldout/in-range ] || python "$here/make_heldout.py" runs/heldout
for set in in-range out-of-range; do
  perfgen-sr evaluate --data "runs/heldout/$set" --out "$out/$set" --fraction 0.35 "$@"
done
