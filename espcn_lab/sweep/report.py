"""Sweep results: ``results.csv`` (one row per trial) and ``pareto.png`` (PSNR-Y against latency).

A trial record is the dict ``espcn_lab.sweep_run`` stores as ``trials/<id>.json``: ``id``, ``number``,
``flat`` (parameter values by config key), ``status``, ``error`` and ``summary`` (fit's summary.json).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

METRIC_COLUMNS = ("val/psnr_y", "val/ssim_y")


MODEL_COLUMNS = ("latency/ms_1080p", "model/params", "model/macs_1080p", "epochs", "steps", "train_seconds")


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict, bool)) or value is None else value


def write_results(records: list[dict], path: Path) -> Path:
    """One CSV row per trial: parameters, status, PSNR/SSIM (mean and per set), latency, size, error."""
    records = sorted(records, key=lambda r: r["number"])
    params = sorted({k for r in records for k in r["flat"]})
    per_set = sorted({k for r in records for k in r.get("summary", {})
                      if k.startswith("val/") and k.count("/") == 2})
    columns = ["trial", "number", "status", *params, *METRIC_COLUMNS, *per_set, *MODEL_COLUMNS, "run_dir", "error"]
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for r in records:
            summary = r.get("summary", {})
            row = {"trial": r["id"], "number": r["number"], "status": r["status"],
                   "run_dir": summary.get("run_dir", ""), "error": r.get("error", "")}
            row.update({k: _cell(r["flat"].get(k, "")) for k in params})
            row.update({k: summary.get(k, "") for k in (*METRIC_COLUMNS, *per_set, *MODEL_COLUMNS)})
            writer.writerow(row)
    tmp.replace(path)
    return path


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of (latency, psnr) points no other point beats on both (lower latency, higher PSNR)."""
    front = []
    for i, (lat, psnr) in enumerate(points):
        dominated = any(
            (lat2 <= lat and psnr2 >= psnr) and (lat2 < lat or psnr2 > psnr) for lat2, psnr2 in points
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def _label(record: dict) -> str:
    """``#number`` (the results.csv row) plus the parameters when they fit in a short label."""
    text = " ".join(f"{k.split('.')[-1]}={_cell(v)}" for k, v in sorted(record["flat"].items()))
    return f"#{record['number']}" + (f" {text}" if len(text) <= 30 else "")


def plot_pareto(records: list[dict], path: Path, metric: str = "val/psnr_y") -> Path:
    """Scatter of finished trials, PSNR-Y (dB) against ms per 1080p frame, Pareto front marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in records if r["status"] == "finished"
            and _finite(r["summary"].get(metric)) and _finite(r["summary"].get("latency/ms_1080p"))]
    points = [(r["summary"]["latency/ms_1080p"], r["summary"][metric]) for r in done]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    if points:
        ax.scatter(*zip(*points), color="0.6", label="trial", zorder=2)
        front = pareto_front(points)
        ax.plot(*zip(*(points[i] for i in front)), "o-", color="tab:red", drawstyle="steps-post",
                label="Pareto front", zorder=3)
        for i in front:
            ax.annotate(_label(done[i]), points[i], fontsize=6, xytext=(4, 4), textcoords="offset points")
        ax.legend(loc="lower right")
    else:
        ax.text(0.5, 0.5, "no finished trial with PSNR and latency yet", ha="center", transform=ax.transAxes)
    ax.set_xlabel("latency per 1080p output frame (ms)")
    ax.set_ylabel(f"{metric} (dB)")
    ax.set_title(f"{len(done)} finished of {len(records)} trials")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
