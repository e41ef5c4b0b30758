"""Training cost of distillation from a self-ensembled teacher (optim.distill_self_ensemble): ms per optimizer
step without a teacher, with the teacher run on every batch, and with its outputs remembered per stored patch
(train.distill.TeacherTargets, what fit does on a CPU), side by side.

Usage: python benchmarks/bench_distill.py [--scale 3] [--batch 32] [--pool 4000] [--steps 200] [--threads 1] [--json OUT]
The student is the ECB-trained ESPCN (model.reparam=ecb, channels-last, Adam), the teacher the paper's network
under its 8 flips/rotations. Batches are drawn from a pool of --pool stored patches, as the training stream
revisits the shards' pairs (x3's training shards hold ~39k); the remembered mode is timed after one pass over the
pool has filled its memory (the steady state of a run; the first pass costs what the teacher does). The three
are timed in alternating blocks so a busy machine weighs on all alike.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from espcn_lab.evaluate.ensemble import SelfEnsemble
from espcn_lab.model import ESPCN
from espcn_lab.train.distill import TeacherTargets


def _step_ms(student, opt, batches, targets) -> float:
    start = time.perf_counter()
    for lq, gt in batches:
        extra = targets(lq) if targets else None
        x = lq.float().div_(255.0).contiguous(memory_format=torch.channels_last)
        sr = student(x)
        loss = torch.nn.functional.mse_loss(sr, gt.float().div_(255.0))
        if extra is not None:
            loss = 0.5 * loss + 0.5 * torch.nn.functional.mse_loss(sr, extra)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) * 1e3 / len(batches)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=int, default=3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--pool", type=int, default=4000, help="stored patches the batches are drawn from")
    p.add_argument("--steps", type=int, default=200, help="steps per block; 4 blocks per mode")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    s = a.scale
    pool_lq = torch.randint(0, 256, (a.pool, 1, 17, 17), dtype=torch.uint8)
    pool_gt = torch.randint(0, 256, (a.pool, 1, 17 * s, 17 * s), dtype=torch.uint8)
    draw = torch.randint(0, a.pool, (a.steps, a.batch))
    batches = [(pool_lq[i], pool_gt[i]) for i in draw]
    teacher = SelfEnsemble(ESPCN(s)).eval()
    student = ESPCN(s, reparam="ecb").to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(student.parameters(), lr=1e-5)
    modes = {"no teacher": None, "teacher every batch": TeacherTargets(teacher, cache_bytes=0),
             "teacher remembered": TeacherTargets(teacher)}
    remembered = modes["teacher remembered"]
    start = time.perf_counter()
    for i in range(0, a.pool, a.batch):  # the first pass over the stored patches fills the memory
        remembered(pool_lq[i:i + a.batch])
    fill_s = time.perf_counter() - start
    for targets in modes.values():  # warm-up
        _step_ms(student, opt, batches[:20], targets)
    times: dict[str, list[float]] = {k: [] for k in modes}
    names = list(modes)
    for order in (names, names[::-1], names, names[::-1]):
        for name in order:
            times[name].append(_step_ms(student, opt, batches, modes[name]))
    best = {k: min(v) for k, v in times.items()}
    report = {"machine": platform.processor() or platform.machine(), "threads": a.threads, "scale": s,
              "batch": a.batch, "pool": a.pool, "ms_per_step": times, "best_ms_per_step": best,
              "every_batch_over_none": round(best["teacher every batch"] / best["no teacher"], 3),
              "remembered_over_none": round(best["teacher remembered"] / best["no teacher"], 3),
              "every_batch_over_remembered": round(best["teacher every batch"] / best["teacher remembered"], 3),
              "first_pass_s": round(fill_s, 2), "memory_mb": round(remembered.stored / 2**20, 1),
              "hits": remembered.hits, "misses": remembered.misses}
    print(json.dumps(report, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
