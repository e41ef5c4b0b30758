"""Speed cost of ensembles (paper Sec. 5 future work) next to their quality, in one run.

    python benchmarks/bench_ensemble.py [--model x3] [--ensemble MODEL ...] [--data NAME=DIR ...] [--json F]

For the model alone, the model averaged with each --ensemble model, and the geometric self-ensemble
(8 flips/rotations): ms per 1920x1080 output frame (torch fp32 on this machine's CPU or the given
--device, median after warm-up) with the ratio to the single model, and PSNR-Y/SSIM-Y per --data set
through the same code as `espcn-lab eval`.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from espcn_lab.checkpoint import load_model
from espcn_lab.deploy.bench import measure
from espcn_lab.deploy.runtime import pick_device
from espcn_lab.evaluate.ensemble import combine
from espcn_lab.evaluate.run import parse_datasets
from espcn_lab.evaluate.score import score_set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="x3")
    parser.add_argument("--ensemble", nargs="*", default=[])
    parser.add_argument("--data", nargs="*", default=[])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json")
    args = parser.parse_args()
    device = pick_device(args.device)
    loaded = load_model(args.model)
    others = [load_model(m) for m in args.ensemble]
    scale = loaded.config.model.scale
    variants = {"single": combine(loaded, []), "self-ensemble x8": combine(loaded, [], True)}
    if others:
        variants[f"ensemble of {len(others) + 1}"] = combine(loaded, others)
        variants[f"ensemble of {len(others) + 1} + self-ensemble x8"] = combine(loaded, others, True)
    x = torch.rand(1, loaded.config.model.channels, 1080 // scale, 1920 // scale, device=device)
    rows = {}
    print(f"{args.model} x{scale} on {device} ({os.cpu_count()} cores, torch {torch.__version__}), ms per 1080p output")
    for name, (model, _) in variants.items():
        model.to(device).eval()
        with torch.inference_mode():
            timing = measure(lambda i: model(x), device, warmup=2, runs=10, budget_s=20)
        scores = {set_name: score_set(loaded, folder, device, set_name, model)["model"]
                  for set_name, folder in parse_datasets(args.data).items()}
        rows[name] = {**timing, "scores": scores}
    base = rows["single"]["ms_per_frame"]
    for name, row in rows.items():
        psnr = "  ".join(f"{k} {v['psnr_y']:.2f}/{v['ssim_y']:.4f}" for k, v in row["scores"].items())
        print(f"  {name:34s} {row['ms_per_frame']:9.1f} ms  {row['ms_per_frame'] / base:5.1f}x  {psnr}")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "ensemble": args.ensemble, "device": str(device),
                                               "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
