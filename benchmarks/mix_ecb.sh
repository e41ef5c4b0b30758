#!/usr/bin/env bash
# Issue 13: the ECB lever from scratch on the whole training mix (docs/data_card.md + T91), x2 and x3 side by side,
# then `refit` of the last layer on the mix's training images, each model and the shipped one scored on the
# held-out training photos (the ship rule: better than the shipped model on every held-out source) and, only
# watched, on Set5/Set14. Resumable: a finished fit (summary.json) is skipped, an interrupted one resumes.
# Run from a clone with shards/{imnet,bsds,div2k,city,t91}-x{2,3} built (configs/x{2,3}_mix_tanh_ecb.yaml say how):
#   OMP_NUM_THREADS=1 nice -n 19 bash benchmarks/mix_ecb.sh [SCALE ...]     (no SCALE: 2 and 3, side by side)
set -euo pipefail
out=benchmarks/results/mix_ecb
mkdir -p "$out"
scales=${*:-2 3}
fit() {
  local s=$1 dir=runs/x$1_mix_tanh_ecb/main
  if [ ! -f "$dir/summary.json" ]; then
    local resume=()
    [ -f "$dir/last.ckpt" ] && resume=(run.resume=last)
    espcn-lab fit "configs/x${s}_mix_tanh_ecb.yaml" run.name=main "${resume[@]}" > "$out/x${s}_fit.log" 2>&1
  fi
}
score() {  # scale, model, name
  local s=$1
  espcn-lab eval "$2" --device cpu --data Set5=../shared/data/Set5 --data Set14=../shared/data/Set14 \
    --data imagenet_heldout="shards/imnet-x$s" --data div2k_heldout="shards/div2k-x$s" --json "$out/$3.eval.json" > /dev/null
}
for s in $scales; do fit "$s" & done
wait
for s in $scales; do
  dir=runs/x${s}_mix_tanh_ecb/main
  for f in metrics.csv summary.json config.yaml; do cp "$dir/$f" "$out/x${s}_mix_tanh_ecb.$f"; done
  espcn-lab refit "$dir/last.ckpt" --image-dir "shards/imnet-x$s" --image-dir "shards/bsds-x$s" \
    --image-dir "shards/div2k-x$s" --image-dir "shards/city-x$s" --image-dir "shards/t91-x$s" \
    -o "$out/x${s}_mix_tanh_ecb_refit.safetensors" > "$out/x${s}_refit.log" 2>&1
  score "$s" "$dir/last.ckpt" "x${s}_mix_tanh_ecb"
  score "$s" "$out/x${s}_mix_tanh_ecb_refit.safetensors" "x${s}_mix_tanh_ecb_refit"
  score "$s" "x$s" "x${s}_shipped"
done
