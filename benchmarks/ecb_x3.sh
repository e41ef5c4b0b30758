#!/usr/bin/env bash
# Issue 13's re-parameterisation lever (model.reparam=ecb: ECB branches while training, folded into the
# paper's 5-3-3 / 64-32 network for every model file, so inference is unchanged), as two rows that each
# change one thing against a row already measured at the same budget:
#   ft_t91_ecb      = recipe_x3.sh's r0_t91_padded (fine-tune the shipped x3 on T91, 1.2M pairs) + ecb
#   scratch_tanh_ecb = table1_x3.sh's tanh row (from scratch on the ImageNet sample, 2.4M pairs) + ecb
#   scratch_relu_ecb = table1_x3.sh's relu row + ecb (started once scratch_tanh_ecb looked ahead)
# Judged on the held-out training photos; Set5/Set14 are scored after, only watched.
# Resumable: a finished row (summary.json) is skipped, an interrupted one resumes from last.ckpt.
# Run from a clone with shards/{imnet-x3,div2k-x3,t91-x3} built (docs/data_card.md):
#   OMP_NUM_THREADS=1 nice -n 19 bash benchmarks/ecb_x3.sh [ROW ...]     (no ROW: all rows, two at a time)
set -euo pipefail
out=benchmarks/results/ecb_x3
mkdir -p "$out"
want=" ${*:-ft_t91_ecb scratch_tanh_ecb scratch_relu_ecb} "
row() {  # name, config, run dir, overrides...
  local name=$1 config=$2 dir=$3; shift 3
  [[ "$want" == *" $name "* ]] || return 0
  if [ ! -f "$dir/summary.json" ]; then
    local resume=()
    [ -f "$dir/last.ckpt" ] && resume=(run.resume=last)
    espcn-lab fit "$config" "$@" "${resume[@]}" > "$out/$name.log" 2>&1
  fi
  espcn-lab eval "$dir/last.ckpt" --device cpu --data Set5=../shared/data/Set5 --data Set14=../shared/data/Set14 \
    --data imagenet_heldout=shards/imnet-x3 --data div2k_heldout=shards/div2k-x3 --json "$out/$name.eval.json" > /dev/null
  for f in metrics.csv summary.json config.yaml; do cp "$dir/$f" "$out/$name.$f"; done
}
row ft_t91_ecb configs/x3_imagenet_tanh.yaml runs/x3_imagenet_tanh/ft_t91_ecb run.name=ft_t91_ecb \
  data.samples_per_epoch=100000 data.train_shards=shards/t91-x3 optim.valid_loss=false model.reparam=ecb &
row scratch_tanh_ecb configs/x3_imagenet_sample_tanh.yaml runs/x3_imagenet_sample_tanh/ecb run.name=ecb \
  model.reparam=ecb &
wait
row scratch_relu_ecb configs/x3_imagenet_sample_relu.yaml runs/x3_imagenet_sample_relu/ecb run.name=ecb \
  model.reparam=ecb
