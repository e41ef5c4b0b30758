#!/usr/bin/env bash
# Table 1's ImageNet rows at a CPU budget (issue 13): ESPCN x3 tanh and relu from scratch on the ImageNet
# sample (configs/x3_imagenet_sample_{tanh,relu}.yaml), the same budget each, side by side on the two cores
# (one thread each), then `espcn-lab eval` of each last.ckpt on Set5/Set14 (watched, never used to choose)
# and on the held-out photos. Resumable: a finished run is skipped, an interrupted one resumes.
# Run from a clone of the repository with shards/imnet-x3 built (docs/data_card.md):
#   OMP_NUM_THREADS=1 nice -n 19 bash benchmarks/table1_x3.sh
set -euo pipefail
out=benchmarks/results/table1_x3
mkdir -p "$out"
run() {
  local act=$1 dir=runs/x3_imagenet_sample_$1/main
  if [ ! -f "$dir/summary.json" ]; then
    local resume=()
    [ -f "$dir/last.ckpt" ] && resume=(run.resume=last)
    espcn-lab fit "configs/x3_imagenet_sample_$act.yaml" run.name=main "${resume[@]}" > "$out/$act.log" 2>&1
  fi
  espcn-lab eval "$dir/last.ckpt" --device cpu --data Set5=../shared/data/Set5 --data Set14=../shared/data/Set14 \
    --data imagenet_heldout=shards/imnet-x3 --json "$out/$act.eval.json" > /dev/null 2>&1
  cp "$dir/metrics.csv" "$dir/summary.json" "$dir/config.yaml" "$out/" 2>/dev/null || true
  for f in metrics.csv summary.json config.yaml; do mv "$out/$f" "$out/$act.$f"; done
}
run tanh & run relu & wait
