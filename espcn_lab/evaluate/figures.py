"""The paper's figures from a trained model: filters (Fig. 3, 4) and bicubic-vs-ESPCN crops (Fig. 5).

Written as PNGs with matplotlib's Agg backend. PSNR labels follow the evaluation protocol of
``espcn-lab eval`` (Y degraded with the model's degradation, ``scale`` pixels shaved).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from espcn_lab.checkpoint import LoadedModel
from espcn_lab.deploy.infer import Upscaler
from espcn_lab.evaluate.metrics import psnr_y
from espcn_lab.evaluate.protocol import make_eval_pair
from espcn_lab.evaluate.score import network_pass
from espcn_lab.files import atomic_output
from espcn_lab.imaging.degrade import degrade, modcrop, upscale_bicubic
from espcn_lab.imaging.read import list_images, read_hr

FIG5_IMAGES = ("baboon", "comic", "monarch")


def _normalise(w: np.ndarray) -> np.ndarray:
    """Each filter to [0, 1] by its own min/max (as filter visualisations usually are)."""
    lo, hi = w.min(axis=(-2, -1), keepdims=True), w.max(axis=(-2, -1), keepdims=True)
    return (w - lo) / np.maximum(hi - lo, 1e-12)


def first_layer_filters(model: torch.nn.Module) -> np.ndarray:
    """(n1, k, k) first-layer kernels of the luma (or mean colour) input, each in [0, 1]."""
    w = model.conv_layers()[0].weight.detach().cpu().numpy()  # (n1, C, k, k)
    return _normalise(w.mean(axis=1))


def last_layer_filters(model: torch.nn.Module) -> np.ndarray:
    """(n_{L-1}, k*r, k*r): per input map, the r^2 sub-pixel kernels arranged by the periodic shuffle."""
    last = model.conv_layers()[-1]
    r, c = model.scale, model.channels
    w = last.weight.detach().cpu()  # (c*r*r, n, k, k)
    per_map = w.reshape(c, r * r, w.shape[1], *w.shape[2:]).mean(0).permute(1, 0, 2, 3)  # (n, r*r, k, k)
    # output pixel (dy, dx) of a shuffled block comes from channel dy*r+dx: place kernel there
    k = w.shape[-1]
    blocks = per_map.reshape(-1, r, r, k, k).permute(0, 3, 1, 4, 2).reshape(-1, k * r, k * r)
    return _normalise(blocks.numpy())


def filter_mosaic(filters: np.ndarray, zoom: int = 4) -> np.ndarray:
    """(n, k, k) filters in [0, 1] -> one (H, W) uint8 mosaic on white, 1 px gaps, ``zoom`` x enlarged
    (the run folder's filters.png)."""
    count, k = filters.shape[0], filters.shape[-1]
    cols = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / cols))
    grid = np.full((rows * (k + 1) + 1, cols * (k + 1) + 1), 255, np.uint8)
    for i, w in enumerate(filters):
        r, c = divmod(i, cols)
        grid[1 + r * (k + 1):1 + r * (k + 1) + k, 1 + c * (k + 1):1 + c * (k + 1) + k] = np.round(w * 255)
    return np.kron(grid, np.ones((zoom, zoom), np.uint8))


def _grid_png(filters: np.ndarray, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(filters)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.8, rows * 0.8 + 0.4))
    for i, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if i < n:
            ax.imshow(filters[i], cmap="gray", interpolation="nearest", vmin=0, vmax=1)
    fig.suptitle(title, fontsize=9)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def _centre_crop(img: np.ndarray, frac: float = 0.5) -> np.ndarray:
    h, w = img.shape[:2]
    ch, cw = int(h * frac), int(w * frac)
    return img[(h - ch) // 2:(h - ch) // 2 + ch, (w - cw) // 2:(w - cw) // 2 + cw]


def comparison_png(loaded: LoadedModel, hr_path: Path, path: Path) -> dict[str, float]:
    """Bicubic | ESPCN | original crops of one image with protocol PSNR-Y; returns the two PSNRs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model, s = loaded.model, loaded.config.model.scale
    hr = read_hr(hr_path)
    pair = make_eval_pair(hr_path.stem, hr, s, loaded.degradation, 1)
    scores = {"bicubic": psnr_y(upscale_bicubic(pair.lq, s), pair.gt_y, s),
              "espcn": psnr_y(network_pass(model, pair.lq), pair.gt_y, s)}
    hr_c = modcrop(hr, s)
    lq_c = degrade(hr_c, s, loaded.degradation)
    shown = {"bicubic": upscale_bicubic(lq_c, s), "espcn": Upscaler(model, "cpu", "fp32", "torch")(lq_c), "original": hr_c}
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    for ax, (name, img) in zip(axes, shown.items()):
        ax.imshow(_centre_crop(img), cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(f"{name} ({scores[name]:.2f} dB)" if name in scores else name, fontsize=10)
        ax.axis("off")
    fig.suptitle(f"{hr_path.stem}, x{s}", fontsize=11)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return scores


def write_figures(loaded: LoadedModel, set14_dir: str | Path | None, out_dir: str | Path) -> dict[str, object]:
    """Write fig3_first_layer.png, fig4_last_layer.png and fig5_<image>.png; return paths and PSNRs."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = loaded.config.model.scale
    result: dict[str, object] = {
        "fig3": str(_grid_png(first_layer_filters(loaded.model), out / "fig3_first_layer.png",
                              f"first-layer filters (x{s})")),
        "fig4": str(_grid_png(last_layer_filters(loaded.model), out / "fig4_last_layer.png",
                              f"last-layer filters after periodic shuffle (x{s})")),
    }
    if set14_dir is not None:
        files = {p.stem: p for p in list_images(set14_dir)}
        for name in FIG5_IMAGES:
            if name in files:
                result[f"fig5_{name}"] = comparison_png(loaded, files[name], out / f"fig5_{name}.png")
    return result
