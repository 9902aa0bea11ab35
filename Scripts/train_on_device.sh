#!/usr/bin/env bash
# One call of a lent GPU machine: continue PerfGen and the GAN from the bundled weights for MINUTES in
# all, then write weights, logs and a short held-out evaluation under OUT. Nothing to type on the device.
# Usage (repository root, perfgen-sr installed): Scripts/train_on_device.sh MINUTES OUT
# The bundled recipe (v-prediction, one-pass mean, 64x64 crops, re-acquired HR frames) at GPU batch sizes;
# PerfGen gets 70 % of the time, the GAN 20 %, the evaluation the rest.
set -euo pipefail
minutes=$1; out=$2
mkdir -p "$out"
cores=$(nproc)
perfgen_minutes=$(python -c "print(round($minutes * 0.7, 1))")
gan_minutes=$(python -c "print(round($minutes * 0.2, 1))")
perfgen-sr train --phantom-cases 400 --phantom-frames 30 --phantom-seed 0 --val-studies 8 \
  --out "$out/perfgen" --preset small --init PerfGenSR/Resources/Models/perfgen.safetensors \
  --prediction v_prediction --mean-fraction 0.5 --residual-scale 5 --crop 64 --steps 100000 --batch 128 \
  --lr 2e-4 --ema-decay 0.999 --workers $((cores - 2)) --val-every 500 --val-sampler mean --val-steps 1 \
  --checkpoint-every 250 --time-limit "$perfgen_minutes" --progress-lines > "$out/perfgen.log" 2>&1
perfgen-sr train-gan --phantom-cases 400 --phantom-frames 30 --phantom-seed 0 --val-studies 8 \
  --out "$out/gan" --preset small --init PerfGenSR/Resources/Models/gan.safetensors --pretrain-steps 0 \
  --crop 64 --steps 100000 --batch 64 --lr 5e-5 --workers $((cores - 2)) --val-every 500 \
  --checkpoint-every 250 --time-limit "$gan_minutes" --progress-lines > "$out/gan.log" 2>&1
python "$(dirname "$0")/make_heldout.py" "$out/heldout" > /dev/null
perfgen-sr evaluate --data "$out/heldout/in-range" --out "$out/eval-in-range" --max-frames 20 \
  --models "perfgen=$out/perfgen/model.safetensors,gan=$out/gan/model.safetensors" --device cuda
echo "bundle with: python Scripts/bundle_model.py $out/perfgen perfgen && python Scripts/bundle_model.py $out/gan gan"
