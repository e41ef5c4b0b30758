#!/usr/bin/env bash
# Recipe ablation for issue 13 (x3, tanh, fine-tuned from the shipped x3): one change per row, the same
# training budget in multiply-adds (1.2M padded 17x17 pairs' worth: a valid-loss 17x17 pair costs 0.41 of
# that, a padded 33x33 pair 3.77; T91 has too few 99x99 crops for r5), 12 cosine epochs, Adam 2e-4 -> 1e-6, batch 64.
# Rows are judged on the held-out training images (val/psnr_y); Set5/Set14 are scored after, only watched.
# Resumable: a finished row (summary.json) is skipped, an interrupted one resumes from last.ckpt.
# Run from a clone of the repository with shards/ holding the folders named in configs/x3_imagenet_tanh.yaml:
#   OMP_NUM_THREADS=1 nice -n 19 bash benchmarks/recipe_x3.sh
set -euo pipefail
out=benchmarks/results/recipe_x3
mkdir -p "$out"
mix="[shards/imnet-x3,shards/bsds-x3,shards/div2k-x3,shards/city-x3,shards/t91-x3]"
row() {  # name, pairs per epoch, overrides...
  local name=$1 spe=$2; shift 2
  local dir=runs/x3_imagenet_tanh/$name
  if [ ! -f "$dir/summary.json" ]; then
    local resume=()
    [ -f "$dir/last.ckpt" ] && resume=(run.resume=last)
    espcn-lab fit configs/x3_imagenet_tanh.yaml run.name="$name" data.samples_per_epoch="$spe" "$@" "${resume[@]}" \
      > "$out/$name.log" 2>&1
  fi
  espcn-lab eval "$dir/last.ckpt" --device cpu --data Set5=../shared/data/Set5 --data Set14=../shared/data/Set14 \
    --data imagenet_heldout=shards/imnet-x3 --data div2k_heldout=shards/div2k-x3 --json "$out/$name.eval.json" > /dev/null
  cp "$dir/metrics.csv" "$out/$name.metrics.csv"
  cp "$dir/summary.json" "$out/$name.summary.json"
}
padded=100000          # 1.2M pairs over 12 epochs
valid17=241500         # 1.2M / 0.414
row r0_t91_padded "$padded" data.train_shards=shards/t91-x3 optim.valid_loss=false
row r1_mix_padded "$padded" optim.valid_loss=false
row r2_mix_valid "$valid17"
# r2 lost to r1 (valid loss: -0.09 dB held-out ImageNet, -0.13 Set5), so the last rows change r1 (padded):
row r3_mix_padded_jpeg_half "$padded" optim.valid_loss=false "data.train_shards=[shards/imnet-x3-h05,shards/bsds-x3-h05,shards/div2k-x3,shards/city-x3,shards/t91-x3]"
row r4_mix_padded_scaleaug "$padded" optim.valid_loss=false "data.train_shards=[shards/imnet-x3-aug,shards/bsds-x3,shards/div2k-x3,shards/city-x3,shards/t91-x3]"
row r5_mix_padded_p33 26500 optim.valid_loss=false "data.train_shards=[shards/imnet-x3-p33,shards/bsds-x3-p33,shards/div2k-x3-p33,shards/city-x3-p33]"
