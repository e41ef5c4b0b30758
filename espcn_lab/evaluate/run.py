"""``espcn-lab eval``: score a model on folders of HR images (or videos) against bicubic, print and write
the results.

Per image: modcrop, LR made with the model's own degradation, the network on Y (or RGB), PSNR-Y and
SSIM-Y with ``scale`` pixels shaved; per set: means and a paired t-test (``scipy.stats.ttest_rel``)
of the model's PSNR against bicubic over the same images, as the paper reports significance.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

from espcn_lab.deploy.runtime import pick_device
from espcn_lab.errors import UserError
from espcn_lab.evaluate.protocol import hr_images
from espcn_lab.evaluate.score import score_set
from espcn_lab.files import write_bytes_atomic


def parse_datasets(items: list[str]) -> dict[str, str]:
    """``['Set5=../data/Set5', ...]`` -> {'Set5': '../data/Set5'}; a bare DIR is named after its folder."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep:
            name, folder = Path(item).name, item
        if not name or not folder:
            raise UserError(f"--data expects NAME=DIR, got {item!r}")
        out[name] = folder
    return out


def evaluate(model_spec: str, datasets: dict[str, str], scale: Optional[int] = None,
             device: str = "auto", ensemble: Optional[list[str]] = None, self_ensemble: bool = False) -> dict[str, Any]:
    """Score ``model_spec`` (x2|x3|x4, .safetensors, .ckpt) on each NAME -> folder; JSON-ready results.

    ``ensemble``: further models whose outputs are averaged with it; ``self_ensemble``: average over the 8
    flips/rotations of each input (8x the network passes).
    """
    from espcn_lab.checkpoint import load_model
    from espcn_lab.evaluate.ensemble import combine

    if not datasets:
        raise UserError("give at least one --data NAME=DIR")
    for name, folder in datasets.items():  # fail before loading anything
        try:
            hr_images(folder)
        except UserError as err:
            raise UserError(f"--data {name}: {err}") from None
    loaded = load_model(model_spec)
    model_scale = loaded.config.model.scale
    if scale is not None and scale != model_scale:
        raise UserError(f"--scale {scale}: the model {model_spec} is x{model_scale}")
    model, label = combine(loaded, [load_model(spec) for spec in ensemble or []], self_ensemble)
    dev = pick_device(device)
    model.to(dev).eval()
    sets = {name: score_set(loaded, folder, dev, name, model) for name, folder in datasets.items()}
    return {"model": model_spec + label, "scale": model_scale, "degradation": loaded.degradation.to_dict(),
            "config": loaded.config.model.__dict__, "ensemble": list(ensemble or []), "self_ensemble": self_ensemble,
            "datasets": sets}


def format_table(results: dict[str, Any]) -> str:
    """One block per dataset: bicubic and model PSNR-Y / SSIM-Y, gain and p-value."""
    lines = [f"model {results['model']}  x{results['scale']}  degradation {results['degradation']['kind']}"]
    for name, s in results["datasets"].items():
        gain = s["model"]["psnr_y"] - s["bicubic"]["psnr_y"]
        lines += [f"\n{name} ({len(s['images'])} images)",
                  f"  {'method':<10}{'PSNR-Y':>9}{'SSIM-Y':>9}",
                  f"  {'bicubic':<10}{s['bicubic']['psnr_y']:>9.2f}{s['bicubic']['ssim_y']:>9.4f}",
                  f"  {'model':<10}{s['model']['psnr_y']:>9.2f}{s['model']['ssim_y']:>9.4f}",
                  f"  gain {gain:+.2f} dB, paired t-test p = {s['p_value_vs_bicubic']:.3g}"]
    return "\n".join(lines)


def write_json(results: dict[str, Any], path: str | Path) -> Path:
    """Write the results (NaN as null) to ``path``."""
    def clean(obj):
        if isinstance(obj, float) and not math.isfinite(obj):
            return None
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [clean(v) for v in obj]
        return obj

    return write_bytes_atomic(path, json.dumps(clean(results), indent=2).encode())
