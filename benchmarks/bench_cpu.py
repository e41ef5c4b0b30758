"""CPU speed of ESPCN x2/x3/x4 to a 1920x1080 frame, with every baseline timed in the same run.

Runs ``espcn_lab.bench.run_bench`` (what ``espcn-lab bench`` runs) for seeded paper-shaped models
(5-3-3, 64/32, tanh; timing does not depend on the weights), and writes
``benchmarks/results/cpu_x{S}.json`` plus a markdown table on stdout. Usage:
``python benchmarks/bench_cpu.py [--scales 3] [--runs 10] [--pipeline]``. Figures on a shared
machine move with its load: compare ratios within one run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from espcn_lab.deploy.bench import run_bench
from espcn_lab.deploy.infer import Upscaler
from espcn_lab.model import ESPCN

RESULTS = Path(__file__).parent / "results"


def row(report: dict) -> str:
    b, r = report["baselines"], report["ratios"]

    def ms(name: str) -> str:
        return f"{b[name]['ms_per_frame']:.0f}" if "ms_per_frame" in b.get(name, {}) else "-"

    return (f"| x{report['scale']} | {report['ms_per_frame']:.0f} | {report['frame_ms']:.0f} | "
            f"{report.get('frame_ms_split', float('nan')):.0f} | {report.get('split_over_frame', '-')} | "
            f"{ms('espcn_torch_fp32_nchw_eager')} | {ms('espcn_torch')} | {ms('opencv_espcn')} | {ms('espcn_deconv')} | "
            f"{ms('srcnn_9_5_5')} | {ms('bicubic')} | {r.get('stock_over_model', '-')} | {r.get('opencv_over_model', '-')} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--budget", type=float, default=15.0)
    parser.add_argument("--pipeline", action="store_true")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    rows = []
    for scale in args.scales:
        torch.manual_seed(0)
        model = ESPCN(scale).eval()
        report = run_bench(Upscaler(model, device="cpu"), model, ["1080p"], runs=args.runs, warmup=2,
                           budget_s=args.budget, pipeline=args.pipeline)
        (RESULTS / f"cpu_x{scale}.json").write_text(json.dumps(report, indent=1))
        rows.append(row(report))
    m = report["machine"]
    print(f"{m['cpu']}, {m['threads']} threads, torch {m['torch']}; ms per 1920x1080 output frame (median)\n")
    print("| scale | ours: net (ORT) | ours: full RGB frame (one ORT graph) | RGB frame, ORT net + torch colour | "
          "split/graph | PyTorch fp32 NCHW eager | PyTorch channels-last | OpenCV dnn_superres | deconv last layer | "
          "SRCNN 9-5-5 | bicubic | stock/ours | OpenCV/ours |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
