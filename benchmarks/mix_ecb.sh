#!/usr/bin/env bash
# Issue 13: the ECB lever from scratch on the training photos (docs/data_card.md + T91), x2 and x3 side by side,
# then `refit --no-augment` of the last layer on the run's own training images (8x faster than with the 8
# flips/rotations); each model and the shipped one are scored on
# the held-out training photos (the ship rule: better than the shipped model on every held-out source) and,
# only watched, on Set5/Set14. Resumable: a finished fit (summary.json) is skipped, an interrupted one resumes.
# VARIANT picks the config, configs/x{2,3}_${VARIANT}_tanh_ecb.yaml (its shards, which it says how to build, are
# what refit reads and its held-out sources what eval scores):
#   mix   ImageNet sample + BSDS500 test + DIV2K grey + City100 + T91, 60 epochs (held out: ImageNet, DIV2K)
#   clean BSDS500 test (20 held out) + DIV2K grey + T91, 32 epochs (held out: ImageNet, DIV2K, BSDS500 test)
#   greyluma  clean on shards of prep 0.2 (a greyscale photo's grey values as its Y), else the same
#   greyluma_restart  a second cosine (warm restart) from 0.2's greyluma models, same shards and held-out sources
#   greyluma_third  a third cosine from 0.3's models (the second cycle's), peak rate 3e-4
#   greyluma_fourth  a fourth cosine from 0.4's models, peak 2e-4 (x3: 1 h 40 min, the control of the ablation
#                   below; x2 and x4: 1 h 30 min, side by side)
#   greyluma_fourth_distill  (x3 only) the same with the 0.4 x3's self-ensemble as a distillation teacher
#   greyluma_fifth, greyluma_fifth_p33  x3: a 35-min fifth cosine from 0.5's x3 on 17x17 and on 33x33 LR patches;
#                   greyluma_fifth_p33 x2 and x4: a fifth cosine from 0.6's models on 33x33 patches, 1 h 40 min side by side
#   greyluma_sixth_p33  a sixth cosine on 33x33 patches at that full budget: x3 from 0.6's x3, x2 from 0.7's x2,
#                   x4 from 0.7's x4 (the control beside greyluma_sixth_p33_lowpeak)
#   greyluma_sixth_p33_lowpeak  (x4 only) the x4 sixth cosine with its peak rate at 5e-5, beside the control (run
#                   each VARIANT with scale 4)
#   greyluma_seventh_p33, greyluma_seventh_p49  x3: a seventh cosine from 0.8's x3 on 33x33 and on 49x49 patches,
#                   side by side (run each VARIANT with scale 3); greyluma_seventh_p33 x2: a seventh cosine from 0.8's x2
#   greyluma_eighth_p49  (x3 only) an eighth cosine from 0.9's x3 on 49x49 patches, beside greyluma_seventh_p33 at x2
#   greyluma_ninth_p49, greyluma_ninth_p49_charbonnier  (x3 only) a ninth cosine from the eighth's x3 on 49x49
#                   patches, MSE (the control) against a Charbonnier loss, side by side (run each VARIANT with scale 3)
#   greyluma_ninth_p49_bsd200  (x3 only) greyluma_ninth_p49 with BSD200 (BSDS500 train) added to the shards
#   greyluma_seventh_p33_bsd200  (x4 only) a seventh cosine from 0.10's x4 on 33x33 patches, BSD200 added (run beside it)
#   greyluma_tenth_p49, greyluma_tenth_p49_ema  (x3 only) a tenth cosine from 0.12's x3 (Charbonnier, 49x49), without
#                   and with a moving average of the weights (optim.ema_decay 0.999), side by side
# Run from a clone with the shards built:
#   VARIANT=clean OMP_NUM_THREADS=1 nice -n 19 bash benchmarks/mix_ecb.sh [SCALE ...]   (no SCALE: 2 and 3)
set -euo pipefail
variant=${VARIANT:-mix}
scales=${*:-2 3}
for s in $scales; do
  [ -f "configs/x${s}_${variant}_tanh_ecb.yaml" ] || { echo "no configs/x${s}_${variant}_tanh_ecb.yaml: see the VARIANT list above" >&2; exit 2; }
done
out=benchmarks/results/${variant}_ecb
mkdir -p "$out"
args() {  # scale, refit|eval: the config's training shards as refit --image-dir, or its held-out sources as eval --data
  python -c 'import sys
from espcn_lab.config import load_config
d = load_config(sys.argv[1]).data
if sys.argv[2] == "refit":
    pairs = [("--image-dir", s) for s in d.train_shards]
else:
    pairs = [("--data", f"{k}={v}") for k, v in d.val_dirs.items()]
print(*(a for p in pairs for a in p))' "configs/x$1_${variant}_tanh_ecb.yaml" "$2"
}
fit() {
  local s=$1 dir=runs/x$1_${variant}_tanh_ecb/main
  if [ ! -f "$dir/summary.json" ]; then
    local resume=()
    [ -f "$dir/last.ckpt" ] && resume=(run.resume=last)
    espcn-lab fit "configs/x${s}_${variant}_tanh_ecb.yaml" run.name=main "${resume[@]}" > "$out/x${s}_fit.log" 2>&1
  fi
}
score() {  # scale, model, name
  local data
  read -ra data <<< "$(args "$1" eval)"
  espcn-lab eval "$2" --device cpu --data Set5=../shared/data/Set5 --data Set14=../shared/data/Set14 \
    "${data[@]}" --json "$out/$3.eval.json" > /dev/null
}
for s in $scales; do fit "$s" & done
wait
for s in $scales; do
  dir=runs/x${s}_${variant}_tanh_ecb/main; name=x${s}_${variant}_tanh_ecb
  for f in metrics.csv summary.json config.yaml; do cp "$dir/$f" "$out/$name.$f"; done
  for f in "$dir"/metrics.*.csv; do [ -f "$f" ] && cp "$f" "$out/$name.${f##*/}"; done  # segments before a resume
  read -ra dirs <<< "$(args "$s" refit)"
  espcn-lab refit "$dir/last.ckpt" --no-augment "${dirs[@]}" -o "$out/${name}_refit_noaug.safetensors" > "$out/x${s}_refit.log" 2>&1
  score "$s" "$dir/last.ckpt" "$name"
  score "$s" "$out/${name}_refit_noaug.safetensors" "${name}_refit_noaug"
  score "$s" "x$s" "x${s}_shipped"
done
