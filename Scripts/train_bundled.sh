#!/usr/bin/env bash
# The exact training commands behind the bundled models (see PerfGenSR/Resources/Models/*.md).
# Phantom studies with seeds 0..399 are generated in memory; 8 of them are held back for validation.
# Usage: Scripts/train_bundled.sh perfgen|gan [extra perfgen-sr train arguments, e.g. --resume --time-limit 8]
set -euo pipefail
what=$1; shift
common=(--phantom-cases 400 --phantom-frames 40 --phantom-seed 0 --val-studies 8 --workers 14 --checkpoint-every 500)
case $what in
  perfgen) perfgen-sr train "${common[@]}" --out runs/perfgen-small --preset small --steps 20000 --batch 64 \
             --lr 2e-4 --precision fp32 --val-every 1000 "$@" ;;
  gan)     perfgen-sr train-gan "${common[@]}" --out runs/gan-small --preset small --steps 6000 --batch 32 \
             --lr 1e-4 --val-every 1000 "$@" ;;
  *) echo "usage: $0 perfgen|gan [train arguments]" >&2; exit 2 ;;
esac
