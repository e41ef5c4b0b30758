"""End of a training run: latency, size, visuals (SR crops, first-layer filters) and ``summary.json``.

Everything here runs on global rank 0 after ``trainer.fit`` and stays cheap (a few forward passes).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from espcn_lab.model import ESPCN, count_parameters, multiply_adds

FRAME_1080P = (1080, 1920)


@torch.inference_mode()
def latency_ms_1080p(model: ESPCN, device: torch.device | str, runs: int = 5, warmup: int = 2) -> float:
    """Median ms of one forward pass producing a 1920x1080 frame (fp32, batch 1), timed as ``bench`` times."""
    from espcn_lab.deploy.bench import measure

    device = torch.device(device)
    lq = torch.rand(1, model.channels, *(math.ceil(n / model.scale) for n in FRAME_1080P), device=device)
    model = model.to(device).eval()
    return measure(lambda i: model(lq), device, warmup=warmup, runs=runs, budget_s=float("inf"))["ms_per_frame"]


def best_validation(run_dir: Path) -> dict[str, float]:
    """The ``val/*`` values of the epoch with the highest ``val/psnr_y`` in the run's CSVLogger files
    (``metrics.csv`` and the ``metrics.N.csv`` segments kept from before each resume)."""
    rows = []
    for path in sorted(run_dir.glob("metrics*.csv")):
        with path.open() as f:
            rows += [r for r in csv.DictReader(f) if r.get("val/psnr_y")]
    if not rows:
        return {}
    best = max(rows, key=lambda r: float(r["val/psnr_y"]))
    return {k: float(v) for k, v in best.items() if k.startswith("val/") and v != ""}


def sr_crops(model: ESPCN, val_set, device: torch.device | str, count: int = 3, size: int = 96) -> np.ndarray:
    """Rows of (bicubic | ours | GT) centre crops of the first validation images, as (H, W) uint8 Y."""
    from espcn_lab.evaluate.score import network_pass
    from espcn_lab.imaging.colour import sr_luma
    from espcn_lab.imaging.degrade import upscale_bicubic

    scale, rows = model.scale, []
    for _, pair in list(val_set.items)[:count]:
        ours = sr_luma(network_pass(model, pair.lq, device))
        bicubic = sr_luma(upscale_bicubic(pair.lq, scale))
        y, x = max(0, (pair.gt_y.shape[0] - size) // 2), max(0, (pair.gt_y.shape[1] - size) // 2)
        crops = [img[y:y + size, x:x + size] for img in (bicubic, ours, pair.gt_y)]
        h, w = min(c.shape[0] for c in crops), min(c.shape[1] for c in crops)
        rows.append(np.concatenate([c[:h, :w] for c in crops], axis=1))
    width = min(r.shape[1] for r in rows)
    return np.concatenate([r[:, :width] for r in rows], axis=0)


def save_visuals(model: ESPCN, val_set, run_dir: Path, device, loggers) -> None:
    """Write ``samples.png`` and ``filters.png``; send both to W&B when it is one of the loggers."""
    from PIL import Image

    from espcn_lab.evaluate.figures import filter_mosaic, first_layer_filters

    images = {"samples": sr_crops(model, val_set, device), "filters": filter_mosaic(first_layer_filters(model))}
    for name, img in images.items():
        Image.fromarray(img).save(run_dir / f"{name}.png")
    for logger in loggers:
        if type(logger).__name__ == "WandbLogger":
            logger.log_image(key="visuals", images=list(images.values()),
                             caption=["bicubic | ours | GT", "first-layer filters"])


def finish_run(trainer, module, datamodule, run_dir: Path, status: str, seconds: float,
               error: str = "") -> dict[str, Any]:
    """Measure and log latency/size, save visuals (a finished run), write ``summary.json`` whole (rank 0);
    return the summary. ``status``: finished, interrupted, terminated, hangup, stopped_nan or failed (``error`` says why)."""
    from espcn_lab.files import write_bytes_atomic

    model, device = module.model.folded(), module.device  # what inference runs (model.reparam folded)
    scale = model.scale
    macs = multiply_adds(model, math.ceil(1080 / scale), math.ceil(1920 / scale))
    summary: dict[str, Any] = {"status": status, "run_dir": str(run_dir), "epochs": trainer.current_epoch,
                               "steps": trainer.global_step, "global_rank": trainer.global_rank}
    if error:
        summary["error"] = error
    if not trainer.is_global_zero:
        return summary
    measured = {"model/params": count_parameters(model), "model/macs_1080p": macs}
    if module.cfg.log.latency and status == "finished":
        measured["latency/ms_1080p"] = latency_ms_1080p(model, device)
    for logger in trainer.loggers:
        logger.log_metrics(measured, step=trainer.global_step)
        logger.save()
    if status == "finished" and datamodule.val_set is not None:
        save_visuals(model, datamodule.val_set, run_dir, device, trainer.loggers)
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    summary.update(best_validation(run_dir))
    summary.update({"latency/ms_1080p": measured.get("latency/ms_1080p", float("nan")),
                    "model/params": measured["model/params"], "model/macs_1080p": macs,
                    "train_seconds": round(seconds, 3), "best_ckpt": best})
    write_bytes_atomic(run_dir / "summary.json", json.dumps(summary, indent=2, allow_nan=True))
    return summary
