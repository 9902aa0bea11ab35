#!/usr/bin/env bash
# The exact training commands behind the bundled models (see PerfGenSR/Resources/Models/*.md).
# Phantom studies are generated in memory from seeds 0.. (held-out evaluation uses 95000.., the
# demo 90001, the benchmark 91001-91002). Run from the repository root with perfgen-sr installed.
# Usage: Scripts/train_bundled.sh perfgen-gpu|perfgen-cpu|perfgen-cpu2|perfgen-cpu3|perfgen-cpu4|perfgen-cpu5|perfgen-cpu6|gan|gan-cpu2|gan-cpu3 [extra train arguments]
set -euo pipefail
what=$1; shift

# Stage 4's recipe continued from the PerfGen bundled at commit $1 (copied into folder $2), on 120
# new phantom studies from seed $3, written to $4, stopped after $5 minutes; the rest go to train.
continue_perfgen() {
  local commit=$1 from=$2 seed=$3 out=$4 minutes=$5; shift 5
  mkdir -p "$from"
  for f in perfgen.safetensors perfgen.json; do
    git show "$commit:PerfGenSR/Resources/Models/$f" > "$from/$f"; done
  perfgen-sr train --phantom-cases 120 --phantom-frames 30 --phantom-seed "$seed" --val-studies 4 \
   --out "$out" --preset small --init "$from/perfgen.safetensors" \
   --prediction v_prediction --mean-fraction 0.5 --residual-scale 5 --crop 64 --steps 40000 \
   --batch 16 --lr 1e-4 --ema-decay 0.999 --workers 0 --val-every 250 --val-sampler mean \
   --val-steps 1 --checkpoint-every 50 --time-limit "$minutes" "$@"
}
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
  # stage 4, one CPU thread beside other work (OMP_NUM_THREADS=1): v-prediction, half of each batch at the
  # top noise level (the one-pass mean), 64x64 crops, re-acquired HR frames; from stage 3 as bundled at 8ddc305
  perfgen-cpu3) mkdir -p runs/stage3
                for f in perfgen.safetensors perfgen.json; do
                  git show "8ddc305:PerfGenSR/Resources/Models/$f" > "runs/stage3/$f"; done
                perfgen-sr train --phantom-cases 120 --phantom-frames 30 --phantom-seed 0 --val-studies 4 \
                 --out runs/stage4 --preset small --init runs/stage3/perfgen.safetensors \
                 --prediction v_prediction --mean-fraction 0.5 --residual-scale 5 --crop 64 --steps 40000 \
                 --batch 16 --lr 1e-4 --ema-decay 0.999 --workers 0 --val-every 250 --val-sampler mean \
                 --val-steps 1 --checkpoint-every 50 --time-limit 110 "$@" ;;
  # stage 5, one CPU thread beside other work: stage 4's recipe continued from stage 4 as bundled at 0b87cb2,
  # on 120 new phantom studies (seeds 2000..) so that each stage widens the set of anatomies seen
  perfgen-cpu4) continue_perfgen 0b87cb2 runs/stage4-bundled 2000 runs/stage5 150 "$@" ;;
  # stage 6, one CPU thread: stage 5's recipe continued from stage 5 as bundled at 812b6cf, on 120 new
  # phantom studies (seeds 3000..)
  perfgen-cpu5) continue_perfgen 812b6cf runs/stage5-bundled 3000 runs/stage6 125 "$@" ;;
  # stage 7, one CPU thread: from stage 6 as bundled at ad096f9, on 120 new phantom studies (seeds
  # 4000..); stopped by SIGTERM at step 3939 (103 minutes)
  perfgen-cpu6) continue_perfgen ad096f9 runs/stage6-bundled 4000 runs/stage7 125 "$@" ;;
  # GAN stage 2, one CPU thread: from the warm-up generator (as bundled at 8ddc305) through the adversarial
  # phase, on the same studies and re-acquired HR frames as PerfGen stage 4
  gan-cpu2) mkdir -p runs/gan-stage1
            for f in gan.safetensors gan.json; do
              git show "8ddc305:PerfGenSR/Resources/Models/$f" > "runs/gan-stage1/$f"; done
            perfgen-sr train-gan --phantom-cases 120 --phantom-frames 30 --phantom-seed 0 --val-studies 4 \
             --out runs/gan-stage2 --preset small --init runs/gan-stage1/gan.safetensors --pretrain-steps 0 \
             --crop 48 --steps 20000 --batch 8 --lr 5e-5 --workers 0 --val-every 200 --checkpoint-every 25 \
             --time-limit 60 "$@" ;;
  # GAN stage 3, one CPU thread beside PerfGen stage 5: the adversarial phase continued from stage 2 (as
  # bundled at 39e161a, where its config key became branch_scale) on the same new studies (seeds 2000..)
  gan-cpu3) mkdir -p runs/gan-stage2-bundled
            for f in gan.safetensors gan.json; do
              git show "39e161a:PerfGenSR/Resources/Models/$f" > "runs/gan-stage2-bundled/$f"; done
            perfgen-sr train-gan --phantom-cases 120 --phantom-frames 30 --phantom-seed 2000 --val-studies 4 \
             --out runs/gan-stage3 --preset small --init runs/gan-stage2-bundled/gan.safetensors --pretrain-steps 0 \
             --crop 48 --steps 20000 --batch 8 --lr 5e-5 --workers 0 --val-every 200 --checkpoint-every 25 \
             --time-limit 85 "$@" ;;
  # one H100, stopped by its time limit at step 2217 (inside the 4000-step content-loss warm-up)
  gan) perfgen-sr train-gan --phantom-cases 150 --phantom-frames 40 --phantom-seed 0 --val-studies 6 \
         --workers 15 --checkpoint-every 250 --out runs/gan-small --preset small --steps 20000 --batch 32 \
         --lr 1e-4 --val-every 500 --time-limit 2.7 "$@" ;;
  *) echo "usage: $0 perfgen-gpu|perfgen-cpu|perfgen-cpu2|perfgen-cpu3|perfgen-cpu4|perfgen-cpu5|perfgen-cpu6|gan|gan-cpu2|gan-cpu3 [train arguments]" >&2; exit 2 ;;
esac
