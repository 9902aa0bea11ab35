#!/usr/bin/env bash
# The exact training commands behind the bundled models (see PerfGenSR/Resources/Models/*.md).
# Phantom studies are generated in memory from seeds 0.. (held-out evaluation uses 95000.., the
# demo 90001, the benchmark 91001-91002). Run from the repository root with perfgen-sr installed.
# Usage: Scripts/train_bundled.sh perfgen-gpu|perfgen-cpu|perfgen-cpu2|gan [extra perfgen-sr train arguments]
set -euo pipefail
what=$1; shift
case $what in
  # stage 1, one H100, stopped by its 8-minute limit at step 4995: the paper's formulation (diffuse the HR)
  perfgen-gpu) perfgen-sr train --phantom-cases 400 --phantom-frames 40 --phantom-seed 0 --val-studies 8 \
                 --workers 14 --checkpoint-every 500 --out runs/perfgen-small --preset small --steps 20000 \
                 --batch 64 --lr 2e-4 --precision fp32 --val-every 1000 --residual-scale 0 --time-limit 8.0 "$@" ;;
  # stage 2, two CPU cores: residual diffusion fine-tuned from stage 1 (bundled as Scripts/bundle_model.py)
  perfgen-cpu) perfgen-sr train --phantom-cases 60 --phantom-frames 30 --phantom-seed 0 --val-studies 4 \
                 --out runs/cpu-perfgen-residual --preset small --init runs/perfgen-small/model.safetensors \
                 --residual-scale 5 --steps 8000 --batch 16 --lr 1e-4 --ema-decay 0.998 --workers 1 \
                 --val-every 250 --val-steps 10 --checkpoint-every 100 --time-limit 70 "$@" ;;
  # stage 3, two CPU cores (no GPU was lent that session): more residual training, from stage 2 as it
  # was bundled at commit 3401bbe
  perfgen-cpu2) mkdir -p runs/stage2
                for f in perfgen.safetensors perfgen.json; do
                  git show "3401bbe:PerfGenSR/Resources/Models/$f" > "runs/stage2/$f"; done
                perfgen-sr train --phantom-cases 120 --phantom-frames 30 --phantom-seed 0 --val-studies 4 \
                 --out runs/cpu-perfgen-2 --preset small --init runs/stage2/perfgen.safetensors \
                 --residual-scale 5 --steps 20000 --batch 16 --lr 1e-4 --ema-decay 0.998 --workers 1 \
                 --val-every 1000 --val-steps 5 --checkpoint-every 100 --time-limit 125 "$@" ;;
  # one H100, stopped by its time limit at step 2217 (inside the 4000-step content-loss warm-up)
  gan) perfgen-sr train-gan --phantom-cases 150 --phantom-frames 40 --phantom-seed 0 --val-studies 6 \
         --workers 15 --checkpoint-every 250 --out runs/gan-small --preset small --steps 20000 --batch 32 \
         --lr 1e-4 --val-every 500 --time-limit 2.7 "$@" ;;
  *) echo "usage: $0 perfgen-gpu|perfgen-cpu|perfgen-cpu2|gan [train arguments]" >&2; exit 2 ;;
esac
