#!/usr/bin/env bash
# All GPU work of a session in one device call: paper trainings (issue 4) at GPU speed, the GPU
# tests, `espcn-lab bench` on cuda and the stock reference (../shared/tools/gpu_reference.py) timed
# on the same idle card. Results land in $OUT (the device tool brings back at most 8 files).
#
# Prepare here first (.carry/ is git-ignored; name it in `carry`):
#   mkdir -p .carry/data .carry/shards .carry/init
#   cp -r ../shared/data/Set5 ../shared/data/Set14 .carry/data/   # for the GPU tests and bench only
#   mkdir -p .carry/data/heldout && python -c "import shutil; from espcn_lab.shards.locate import source_images; \
#     [shutil.copy(p, '.carry/data/heldout/') for p in source_images('shards/imnet-x3', 'val')]"
#     (validation: the 100 ImageNet photos `prep --val-images` held out, never an evaluation set)
#   cp -r shards/t91-x3 shards/t91-x4 .carry/shards/          # from `espcn-lab prep` here
#   (the runs continue the shipped x3 / x4; to continue a checkpoint instead, copy it into .carry/init/
#    and set X3_INIT=.carry/init/x3.ckpt X4_INIT=...: session 11 continued x3 stage 5 and x4 stage 6)
#   cp ../shared/tools/gpu_reference.py .carry/
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .carry/whl \
#     webdataset==1.0.2 braceexpand resize-right          # what the device image lacks for fit/bench
# Then: run(command="bash benchmarks/gpu_session.sh", carry=[".carry"], timeout_s=570)
# Dry run on a CPU (same commands, seconds instead of minutes):
#   ACCEL=cpu TRAIN_TIME=00:00:00:40 OUT=/tmp/gpu_out PY=.venv/bin/python bash benchmarks/gpu_session.sh
set -uo pipefail
OUT=${OUT:-gpu_out}; C=.carry; X3_INIT=${X3_INIT:-x3}; X4_INIT=${X4_INIT:-x4}; ACCEL=${ACCEL:-gpu}; TRAIN_TIME=${TRAIN_TIME:-00:00:05:00}; PY=${PY:-python3}
mkdir -p "$OUT" logs
exec > >(tee "$OUT/session.log") 2>&1
if [ "$ACCEL" = gpu ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site $C/whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
fi
export WANDB_MODE=disabled PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 ESPCN_LAB_DATA=$PWD/$C/data
$PY -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__, 'cuda', torch.cuda.is_available())"
date -u +"start %T"

# ---- trainings, side by side on the one card (each is launch-bound: a tiny network, small batches)
fit() {  # NAME CONFIG SCALE KEY=VALUE...
  local name=$1 cfg=$2 s=$3; shift 3
  timeout 420 $PY -m espcn_lab.cli fit configs/$cfg.yaml run.name=$name trainer.accelerator=$ACCEL trainer.devices=1 \
    data.train_shards=$C/shards/t91-x$s data.val_dirs={} data.val_dirs.heldout=$C/data/heldout \
    data.num_workers=2 data.samples_per_epoch=500000 trainer.max_epochs=100000 trainer.max_time=$TRAIN_TIME \
    optim.schedule=cosine_time "$@" > logs/$name.txt 2>&1
  echo "$name exit $?: $(grep -a -o 'val/psnr_y=[0-9.]*' logs/$name.txt | tail -1)"
}
[ "$ACCEL" = cpu ] && small="data.samples_per_epoch=4000" || small=""
if [ "${SKIP_TRAIN:-0}" = 0 ]; then  # SKIP_TRAIN=1: only the tests and timings below
pids=()
fit gpu_a x3_t91_tanh 3 run.init_from=$X3_INIT optim.learning_rate=0.0001 optim.final_learning_rate=0.000001 data.batch_size=64 $small & pids+=($!)
fit gpu_b x3_t91_tanh 3 run.init_from=$X3_INIT optim.learning_rate=0.0003 optim.final_learning_rate=0.000001 data.batch_size=256 $small & pids+=($!)
fit gpu_c x4_t91_tanh 4 run.init_from=$X4_INIT optim.learning_rate=0.0001 optim.final_learning_rate=0.000001 data.batch_size=64 $small & pids+=($!)
fit gpu_d x4_t91_tanh 4 run.init_from=$X4_INIT optim.learning_rate=0.0003 optim.final_learning_rate=0.000001 data.batch_size=256 $small & pids+=($!)
fit gpu_scratch x3_t91_tanh 3 optim.learning_rate=0.001 optim.final_learning_rate=0.00001 data.batch_size=128 $small & pids+=($!)
# model.reparam=ecb (benchmarks/ecb_x3.sh: +0.13 dB held-out from scratch at 2.4M pairs on a CPU): the same row with ECB
fit gpu_scratch_ecb x3_t91_tanh 3 model.reparam=ecb optim.learning_rate=0.001 optim.final_learning_rate=0.00001 data.batch_size=128 $small & pids+=($!)
sleep 60; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv 2>/dev/null
wait "${pids[@]}"  # not a bare wait: that also waits for the tee above
date -u +"trained %T"
tar czf "$OUT/runs.tgz" logs runs/x3_t91_tanh/gpu_* runs/x4_t91_tanh/gpu_* 2>/dev/null
ls -la "$OUT"
fi

# ---- GPU tests, then timings on the idle card: ours and the stock reference in the same call
[ "$ACCEL" = gpu ] || exit 0
timeout 90 $PY -m pytest -q -m gpu tests/deploy/test_infer.py -p no:cacheprovider
timeout 120 $PY -m espcn_lab.cli bench x3 --device cuda --resolution 1080p --resolution 4k --budget 3 \
  --json "$OUT/bench_cuda_x3.json" 2>&1 | tail -30
if $PY -c "import triton" 2>/dev/null; then  # the fused kernel (issue 16 item 5): parity, then its figure
  timeout 120 $PY -m pytest -q -s -m gpu tests/deploy/test_triton_kernel.py -p no:cacheprovider
  timeout 90 $PY -m espcn_lab.cli bench x3 --device cuda --backend triton --resolution 1080p --no-baselines \
    --budget 3 --json "$OUT/bench_cuda_triton_x3.json" 2>&1 | tail -5
fi
timeout 150 $PY $C/gpu_reference.py 2>&1 | tail -60
date -u +"done %T"
