#!/usr/bin/env bash
# All GPU work of a session in one device call: one more cosine cycle of each shipped model (x2, x3, x4) on the
# shipped lineage's own training photos at GPU batch sizes (issue 13), the GPU tests, `espcn-lab bench` on cuda and
# the stock reference (../shared/tools/gpu_reference.py) timed on the same idle card (issue 16).
# Results land in $OUT (the device tool brings back at most 8 files): the four refitted models, the runs and logs.
#
# What travels is at most 64 MiB with the working tree (~13 MiB), so the training photos travel as images (the
# training split of each shard folder the shipped models were trained on, ~41 MiB) and `prep` cuts them on the
# device's cores; validation uses the DIV2K and BSDS500 photos `prep --val-images` held out (never an evaluation set).
# Prepare here first, from a clone with the training shards built (README, "How the shipped models were trained";
# .carry/ is git-ignored):
#   python benchmarks/gpu_carry.py --shards shards --out .carry      # images, held-out photos, wheels, the reference
#   (~46 MiB: it refuses past 50; an RGB PNG travels as its Y, which cuts the same pairs: the shipped models are Y)
# Then: run(command="bash benchmarks/gpu_session.sh", carry=[".carry"], timeout_s=590)
# Back here: score each returned model on every held-out source and apply the ship rule, e.g.
#   espcn-lab eval gpu_out/x3_gpu.safetensors --data imagenet_heldout=shards/imnet-x3 --data div2k_heldout=shards/div2k-x3 \
#     --data bsds_heldout=shards/bsdsv-x3 --json x3_gpu.eval.json && python benchmarks/ship_rule.py x3_gpu.eval.json --shipped ...
# Dry run on a CPU (same commands, seconds instead of minutes):
#   ACCEL=cpu TRAIN_TIME=00:00:00:30 SAMPLES=2000 OUT=/tmp/gpu_out PY=.venv/bin/python bash benchmarks/gpu_session.sh
set -uo pipefail
OUT=${OUT:-gpu_out}; C=.carry; ACCEL=${ACCEL:-gpu}; TRAIN_TIME=${TRAIN_TIME:-00:00:04:00}; PY=${PY:-python3}
SAMPLES=${SAMPLES:-2000000}  # pairs an epoch: one validation (30 photos) an epoch
LQ_PATCH=${LQ_PATCH:-33}  # LR patch side: 33, as 0.6's x3 (its pilot beat 17x17 at equal time; README lineage)
mkdir -p "$OUT" logs
exec > >(tee "$OUT/session.log") 2>&1
if [ "$ACCEL" = gpu ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site $C/whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
fi
export WANDB_MODE=disabled PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 ESPCN_LAB_DATA=$PWD/$C/data
$PY -c "import torch, lightning, omegaconf, webdataset, resize_right; print('torch', torch.__version__, 'lightning', lightning.__version__, 'cuda', torch.cuda.is_available())" || exit 1
date -u +"start %T"

if [ "${SKIP_TRAIN:-0}" = 0 ]; then  # SKIP_TRAIN=1: only the tests and timings below
# ---- shards from the carried photos, all scales at once on the device's cores
pids=()
for s in 2 3 4; do
  for d in bsds500_test div2k_grey T91; do
    $PY -m espcn_lab.cli prep --image-dir $C/src/$d --out shards_gpu/$d-x$s --scale $s --lq-patch $LQ_PATCH --workers 2 > logs/prep_${d}_x$s.txt 2>&1 &
    pids+=($!)
  done
done
wait "${pids[@]}"
tail -qn 1 logs/prep_*.txt
date -u +"prepped %T"

# ---- trainings, side by side on the one card: each is the shipped model + one cosine cycle with ECB branches
# (the shipped lineage's recipe, configs/xS_greyluma_fourth_tanh_ecb.yaml), at a GPU's batch size. The rate warms up
# over 200 steps: without it, 4 steps at batch 512 and 4e-4 from the shipped x3 cost 7.6 dB of held-out PSNR on a CPU
# dry run (21.99 against 29.63 with the warm-up; the shipped model scores 29.63 before training)
fit() {  # NAME SCALE KEY=VALUE...
  local name=$1 s=$2; shift 2
  timeout 420 $PY -m espcn_lab.cli fit configs/x${s}_greyluma_fourth_tanh_ecb.yaml run.dir=runs/gpu run.name=$name \
    run.init_from=x$s trainer.accelerator=$ACCEL trainer.devices=1 \
    "data.train_shards=[shards_gpu/bsds500_test-x$s,shards_gpu/div2k_grey-x$s,shards_gpu/T91-x$s]" \
    data.val_dirs={} data.val_dirs.div2k_heldout=$C/heldout/div2k data.val_dirs.bsds_heldout=$C/heldout/bsds \
    data.val_every_n_epochs=1 data.num_workers=2 data.samples_per_epoch=$SAMPLES trainer.max_epochs=100000 \
    trainer.max_time=$TRAIN_TIME optim.schedule=cosine_time optim.final_learning_rate=0.00001 optim.warmup_steps=200 \
    "$@" > logs/$name.txt 2>&1
  echo "$name exit $?: $(grep -a -o 'val/psnr_y=[0-9.]*' logs/$name.txt | tail -1)"
  $PY -m espcn_lab.cli refit runs/gpu/$name/last.ckpt --no-augment --image-dir $C/src/bsds500_test \
    --image-dir $C/src/div2k_grey --image-dir $C/src/T91 -o "$OUT/$name.safetensors" > logs/refit_$name.txt 2>&1
  echo "$name refit exit $?"
}
pids=()
fit x2_gpu 2 data.batch_size=512 optim.learning_rate=0.0004 & pids+=($!)
fit x3_gpu 3 data.batch_size=512 optim.learning_rate=0.0004 & pids+=($!)
fit x4_gpu 4 data.batch_size=512 optim.learning_rate=0.0004 & pids+=($!)
fit x3_gpu_b128 3 data.batch_size=128 optim.learning_rate=0.0002 & pids+=($!)  # more steps, fewer pairs each
sleep 60; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv 2>/dev/null
wait "${pids[@]}"  # not a bare wait: that also waits for the tee above
date -u +"trained %T"
tar czf "$OUT/runs.tgz" logs runs/gpu/*/metrics.csv runs/gpu/*/config.yaml runs/gpu/*/summary.json 2>/dev/null
ls -la "$OUT"
fi

# ---- GPU tests, then timings on the idle card: ours and the stock reference in the same call
[ "$ACCEL" = gpu ] || exit 0
timeout 90 $PY -m pytest -q -m gpu tests/deploy/test_infer.py -p no:cacheprovider
timeout 100 $PY -m espcn_lab.cli bench x3 --device cuda --resolution 1080p --resolution 4k --budget 3 \
  --json "$OUT/bench_cuda_x3.json" 2>&1 | tail -30
if $PY -c "import triton" 2>/dev/null; then  # the fused kernel (issue 16 item 5): parity, then its figure
  timeout 100 $PY -m pytest -q -s -m gpu tests/deploy/test_triton_kernel.py -p no:cacheprovider
  timeout 60 $PY -m espcn_lab.cli bench x3 --device cuda --backend triton --resolution 1080p --no-baselines \
    --budget 3 --json "$OUT/bench_cuda_triton_x3.json" 2>&1 | tail -5
fi
timeout 120 $PY $C/gpu_reference.py 2>&1 | tail -60
date -u +"done %T"
