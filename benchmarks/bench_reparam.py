"""Training cost of model.reparam=ecb against the plain network: ms per optimizer step, side by side.

Usage: python benchmarks/bench_reparam.py [--scale 3] [--batch 64] [--steps 200] [--threads 1] [--json OUT]
Both take the same random 17x17 LR batches (HR 17r x 17r), MSE, Adam, channels-last as fit does; the two are
timed in alternating blocks (plain, ecb, ecb, plain, ...) so a busy machine weighs on both alike. The ECB
network computes its one kernel per layer from the branches on every step; this measures what that costs.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from espcn_lab.model import ESPCN, count_parameters


def _step_ms(model, opt, batches) -> float:
    start = time.perf_counter()
    for lq, gt in batches:
        loss = torch.nn.functional.mse_loss(model(lq), gt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) * 1e3 / len(batches)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=200, help="steps per block; 4 blocks per network")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    s, fmt = a.scale, torch.channels_last
    batches = [(torch.rand(a.batch, 1, 17, 17).contiguous(memory_format=fmt), torch.rand(a.batch, 1, 17 * s, 17 * s))
               for _ in range(a.steps)]
    nets = {name: ESPCN(s, reparam=name).to(memory_format=fmt) for name in ("none", "ecb")}
    opts = {name: torch.optim.Adam(m.parameters(), lr=1e-4) for name, m in nets.items()}
    for name in nets:  # warm-up
        _step_ms(nets[name], opts[name], batches[:20])
    times: dict[str, list[float]] = {"none": [], "ecb": []}
    for order in (("none", "ecb"), ("ecb", "none"), ("none", "ecb"), ("ecb", "none")):
        for name in order:
            times[name].append(_step_ms(nets[name], opts[name], batches))
    best = {k: min(v) for k, v in times.items()}
    report = {"machine": platform.processor() or platform.machine(), "threads": a.threads, "scale": s,
              "batch": a.batch, "ms_per_step": times, "best_ms_per_step": best,
              "ecb_over_plain": round(best["ecb"] / best["none"], 3),
              "params_training": {k: count_parameters(m) for k, m in nets.items()},
              "params_inference": count_parameters(nets["ecb"].folded())}
    print(json.dumps(report, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
