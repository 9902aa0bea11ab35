#!/usr/bin/env bash
# One call of a lent GPU machine: continue PerfGen and the GAN from the bundled weights for MINUTES in
# all, then write weights, logs and a short held-out evaluation under OUT. Nothing to type on the device.
# Usage (repository root, perfgen-sr installed): Scripts/train_on_device.sh MINUTES OUT
# The bundled recipe (v-prediction, one-pass mean, 64x64 crops, re-acquired HR frames) at GPU batch sizes;
# PerfGen gets 65 % of the time, the GAN 20 %, the GPU benchmark (Scripts/bench_sampling.py, its output in
# OUT/bench_sampling.txt for the README's GPU rows) and the evaluation of both held-out sets the rest.
set -euo pipefail
minutes=$1; out=$2
mkdir -p "$out"
cores=$(nproc)
perfgen_minutes=$(python -c "print(round($minutes * 0.65, 1))")
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
python "$(dirname "$0")/bench_sampling.py" --device cuda --model "$out/perfgen/model.safetensors" \
  --gan "$out/gan/model.safetensors" --ddim 5,20 --ddpm-frames 4 > "$out/bench_sampling.txt" 2>&1 || true
python "$(dirname "$0")/make_heldout.py" "$out/heldout" > /dev/null
for set in in-range out-of-range; do
  perfgen-sr evaluate --data "$out/heldout/$set" --out "$out/eval-$set" --max-frames 20 --fraction 0.35 \
    --models "perfgen=$out/perfgen/model.safetensors,gan=$out/gan/model.safetensors" --device cuda
done
echo "bundle with: python Scripts/bundle_model.py $out/perfgen perfgen && python Scripts/bundle_model.py $out/gan gan"
