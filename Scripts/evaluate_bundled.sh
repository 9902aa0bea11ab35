#!/usr/bin/env bash
# Held-out evaluation behind the model cards: phantom studies with seeds 95000.. (never used in
# training: training used seeds 0..399, the demo uses 90001), 35 % of the lines, bundled models.
# Usage: Scripts/evaluate_bundled.sh [OUT_DIR] [extra evaluate arguments, e.g. --samples 4]
set -euo pipefail
out=${1:-runs/eval-bundled}; shift || true
perfgen-sr phantom --out runs/heldout-phantoms --cases 6 --frames 40 --seed 95000
perfgen-sr evaluate --data runs/heldout-phantoms --out "$out" --fraction 0.35 --max-frames 20 "$@"
