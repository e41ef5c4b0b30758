#!/usr/bin/env bash
# Issue 13: the ECB lever from scratch on the training photos (docs/data_card.md + T91), x2 and x3 side by side,
# then `refit --no-augment` of the last layer on the run's own training images (8x faster than with the 8
# flips/rotations); each model and the shipped one are scored on
# the held-out training photos (the ship rule: better than the shipped model on every held-out source) and,
# only watched, on Set5/Set14. Resumable: a finished fit (summary.json) is skipped, an interrupted one resumes.
# VARIANT picks the sources (configs/x{2,3}_${VARIANT}_tanh_ecb.yaml say how to build their shards):
#   mix   ImageNet sample + BSDS500 test + DIV2K grey + City100 + T91, 60 epochs (held out: ImageNet, DIV2K)
#   clean BSDS500 test (20 held out) + DIV2K grey + T91, 32 epochs (held out: ImageNet, DIV2K, BSDS500 test)
# Run from a clone with the shards built:
#   VARIANT=clean OMP_NUM_THREADS=1 nice -n 19 bash benchmarks/mix_ecb.sh [SCALE ...]   (no SCALE: 2 and 3)
set -euo pipefail
variant=${VARIANT:-mix}
out=benchmarks/results/${variant}_ecb
mkdir -p "$out"
scales=${*:-2 3}
case $variant in
  mix) train=(imnet bsds div2k city t91); heldout=(imagenet_heldout=imnet div2k_heldout=div2k) ;;
  clean) train=(bsdsv div2k t91); heldout=(imagenet_heldout=imnet div2k_heldout=div2k bsds_heldout=bsdsv) ;;
  *) echo "VARIANT must be mix or clean, not '$variant'" >&2; exit 2 ;;
esac
fit() {
  local s=$1 dir=runs/x$1_${variant}_tanh_ecb/main
  if [ ! -f "$dir/summary.json" ]; then
    local resume=()
    [ -f "$dir/last.ckpt" ] && resume=(run.resume=last)
    espcn-lab fit "configs/x${s}_${variant}_tanh_ecb.yaml" run.name=main "${resume[@]}" > "$out/x${s}_fit.log" 2>&1
  fi
}
score() {  # scale, model, name
  local s=$1 data=() h
  for h in "${heldout[@]}"; do data+=(--data "${h%%=*}=shards/${h#*=}-x$s"); done
  espcn-lab eval "$2" --device cpu --data Set5=../shared/data/Set5 --data Set14=../shared/data/Set14 \
    "${data[@]}" --json "$out/$3.eval.json" > /dev/null
}
for s in $scales; do fit "$s" & done
wait
for s in $scales; do
  dir=runs/x${s}_${variant}_tanh_ecb/main; name=x${s}_${variant}_tanh_ecb; dirs=()
  for f in metrics.csv summary.json config.yaml; do cp "$dir/$f" "$out/$name.$f"; done
  for t in "${train[@]}"; do dirs+=(--image-dir "shards/$t-x$s"); done
  espcn-lab refit "$dir/last.ckpt" --no-augment "${dirs[@]}" -o "$out/${name}_refit_noaug.safetensors" > "$out/x${s}_refit.log" 2>&1
  score "$s" "$dir/last.ckpt" "$name"
  score "$s" "$out/${name}_refit_noaug.safetensors" "${name}_refit_noaug"
  score "$s" "x$s" "x${s}_shipped"
done
