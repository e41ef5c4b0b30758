#!/usr/bin/env bash
# All GPU work in one device call (untested on a GPU so far: no session has had one yet).
#   GPU tests, `espcn-lab bench` on cuda with the stock reference in the same run, and the paper
#   trainings (issue 4) at GPU speed. Results land in $OUT (the device tool brings them back).
# Prepare here first (git-ignored .carry/, name it in `carry`):
#   mkdir -p .carry && cp -r ../shared/data .carry/data && cp ../shared/tools/gpu_reference.py .carry/
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .carry/whl \
#     webdataset braceexpand resize-right av wandb typer   # what the device image lacks
# Then: run(command="bash benchmarks/gpu_session.sh", carry=[".carry"], timeout_s=540)
set -uo pipefail
OUT=${OUT:-gpu_out}; DATA=.carry/data; MINUTES=${MINUTES:-1.5}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --target /tmp/site .carry/whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
export WANDB_MODE=disabled PYTHONUNBUFFERED=1
py=python3
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
$py .carry/gpu_reference.py 2>&1 | tail -60 > "$OUT/reference.txt" &
ref=$!
$py -m pytest -q -m gpu tests 2>&1 | tail -20 | tee "$OUT/gpu_tests.txt"
wait $ref
for s in 2 3 4; do
  $py -m espcn_lab.cli prep --image-dir $DATA/T91 --out shards/t91-x$s --scale $s --no-progress
  $py -m espcn_lab.cli prep --image-dir $DATA/BSD200 --out shards/bsd200-x$s --scale $s --no-progress
done
common="trainer.accelerator=gpu trainer.devices=1 data.batch_size=512 data.num_workers=8 data.samples_per_epoch=1000000 trainer.max_time=00:00:0${MINUTES%.*}:30"
for c in x3_t91_tanh x3_t91_relu x2_291_tanh x3_291_tanh x4_291_tanh; do
  sed -i "s#\.\./shared/data#$DATA#g" configs/$c.yaml
  $py -m espcn_lab.cli fit configs/$c.yaml $common run.name=gpu 2>&1 | tail -3 | tee -a "$OUT/fit.txt"
done
# at most 8 files come back: the runs travel as one archive (checkpoints, summaries, metrics)
tar czf "$OUT/runs.tgz" runs/*/gpu/{last.ckpt,summary.json,metrics.csv,config.yaml} 2>/dev/null
$py -m espcn_lab.cli bench runs/x3_291_tanh/gpu/last.ckpt --device cuda --precision fp16 --resolution 1080p \
  --peer-models $DATA/peers/opencv_dnn_superres --json "$OUT/bench_cuda.json" 2>&1 | tail -20
