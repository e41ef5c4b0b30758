"""Closed-form refit of the sub-pixel layer: the exact least-squares optimum given the trained body.

The last convolution of ESPCN is linear and has no activation after it, so with the hidden layers
frozen the training loss (pixel MSE after the periodic shuffle) is an ordinary least-squares problem
in the last layer's weights and bias: with X the 3x3 (or k x k) neighbourhoods of the body's feature
maps plus a constant, and Y the high-resolution patch rearranged by the inverse shuffle, the optimum
solves (X^T X) W = X^T Y. SGD and Adam only approach it: the paper has the last layer learn 10x
slower, and a finite learning rate leaves gradient noise in it. One pass over the training data (whole
images or shards, in float64) accumulates the normal equations; solving them takes milliseconds.

Contract: ``refit_last_layer`` never changes the hidden layers; the training MSE after the refit is
at most the one before (it is the minimiser over the last layer, up to float rounding).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from espcn_lab.errors import UserError
from espcn_lab.imaging.dihedral import COUNT, dihedral
from espcn_lab.model import ESPCN


@dataclass
class NormalEquations:
    """Sufficient statistics of the least-squares problem over the last layer (all float64)."""

    xtx: torch.Tensor  # (D, D), D = in_channels * k * k + 1 (the bias column last)
    xty: torch.Tensor  # (D, channels * scale^2)
    yty: float  # sum of squared targets
    positions: int  # LR positions (rows of X)
    pairs: int  # training pairs (each counted once per view)

    def mse(self, w: torch.Tensor) -> float:
        """Mean squared error per HR pixel of the last layer ``w`` (D, out) on these statistics."""
        sse = self.yty - 2.0 * float((w * self.xty).sum()) + float((w * (self.xtx @ w)).sum())
        return max(sse, 0.0) / (self.positions * self.xty.shape[1])


def layer_matrix(model: ESPCN) -> torch.Tensor:
    """The last conv as the (D, out) float64 matrix the normal equations use (bias as the last row)."""
    w = model.last.weight.detach().double()
    return torch.cat([w.reshape(w.shape[0], -1).T, model.last.bias.detach().double()[None]], 0)


def dihedral_views(lq: torch.Tensor, gt: torch.Tensor, views: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``views`` of the 8 flips/rotations of a (B, C, h, w) pair, applied alike to LR and HR."""
    for t in range(views):
        yield dihedral(lq, t), dihedral(gt, t)


@torch.no_grad()
def accumulate(model: ESPCN, stacks: Iterable[tuple[np.ndarray, np.ndarray]], *, augment: bool = True,
               max_pairs: int | None = None, chunk: int = 64, progress=None) -> NormalEquations:
    """Normal equations of the last layer over (lq, gt) uint8 stacks, (n, h, w[, 3]) and (n, h*s, w*s[, 3]).

    ``augment`` adds the 8 flips/rotations of every pair (the views training saw with ``data.augment``);
    ``max_pairs`` caps the pairs read (each pair counts once whatever the views); ``progress`` is called
    with the number of pairs after each chunk.
    """
    model = model.eval()
    k, c_in, s = model.last.kernel_size[0], model.last.in_channels, model.scale
    out = model.last.out_channels
    dim = c_in * k * k + 1
    xtx = torch.zeros(dim, dim, dtype=torch.float64)
    xty = torch.zeros(dim, out, dtype=torch.float64)
    yty, positions, pairs = 0.0, 0, 0
    views = COUNT if augment else 1
    for lq_stack, gt_stack in stacks:
        for start in range(0, len(lq_stack), chunk):
            take = chunk if max_pairs is None else min(chunk, max_pairs - pairs)
            if take <= 0:
                break
            lq = _as_tensor(lq_stack[start:start + take])
            gt = _as_tensor(gt_stack[start:start + take])
            if gt.shape[-2:] != (lq.shape[-2] * s, lq.shape[-1] * s) or gt.shape[1] * s * s != out:
                raise UserError(f"training pairs {tuple(lq.shape[1:])} -> {tuple(gt.shape[1:])} do not fit an x{s} "
                                f"model with {model.channels} channel(s)")
            for a, b in dihedral_views(lq, gt, views):
                rows = _accumulate_views(model.body(a), F.pixel_unshuffle(b, s), k, xtx, xty)
                yty += float((b.double() ** 2).sum())
                positions += rows
            pairs += len(lq)
            if progress is not None:
                progress(len(lq))
        if max_pairs is not None and pairs >= max_pairs:
            break
    if pairs == 0:
        raise UserError("no training pairs were read")
    return NormalEquations(xtx, xty, yty, positions, pairs)


def _accumulate_views(features: torch.Tensor, target: torch.Tensor, k: int, xtx: torch.Tensor, xty: torch.Tensor,
                      max_rows: int = 32768) -> int:
    """Add the k x k neighbourhoods of ``features`` (B, C, h, w) against ``target`` (B, out, h, w) to the normal
    equations, in bands of rows so a full-size image never builds one huge design matrix. Returns the rows added."""
    pad = k // 2
    padded = F.pad(features, (pad, pad, pad, pad))  # the zero padding of the last conv
    batch, _, h, w = features.shape
    band = max(1, max_rows // max(1, batch * w))
    for r0 in range(0, h, band):
        r1 = min(h, r0 + band)
        x = F.unfold(padded[:, :, r0:r1 + 2 * pad], k).transpose(1, 2).reshape(-1, xtx.shape[0] - 1).double()
        x = torch.cat([x, x.new_ones(len(x), 1)], 1)
        y = target[:, :, r0:r1].flatten(2).transpose(1, 2).reshape(-1, target.shape[1]).double()
        xtx += x.T @ x
        xty += x.T @ y
    return batch * h * w


def _as_tensor(a: np.ndarray) -> torch.Tensor:
    """(n, h, w[, 3]) uint8 -> (n, C, h, w) float in [0, 1]."""
    t = torch.from_numpy(np.array(a, dtype=np.float32, copy=True)) / 255.0
    return t[:, None] if t.ndim == 3 else t.permute(0, 3, 1, 2)


def solve(eq: NormalEquations, ridge: float = 1e-10) -> torch.Tensor:
    """The minimiser (D, out) of the least-squares problem; ``ridge`` (relative to the mean diagonal) keeps
    rank-deficient systems (few pairs, dead features) solvable without moving a well-posed one."""
    reg = ridge * float(eq.xtx.diagonal().mean()) * torch.eye(len(eq.xtx), dtype=torch.float64)
    return torch.linalg.solve(eq.xtx + reg, eq.xty)


def with_last_layer(model: ESPCN, w: torch.Tensor) -> ESPCN:
    """A copy of ``model`` whose last conv is the (D, out) matrix ``w``."""
    new = copy.deepcopy(model)
    weight = new.last.weight
    new.last.weight.data = w[:-1].T.reshape(weight.shape).to(weight.dtype).contiguous()
    new.last.bias.data = w[-1].to(weight.dtype).contiguous()
    return new


def psnr_from_mse(mse: float) -> float:
    """PSNR (dB) of a mean squared error on [0, 1] pixels."""
    return 10.0 * math.log10(1.0 / mse) if mse > 0 else math.inf


def refit_last_layer(model: ESPCN, stacks: Iterable[tuple[np.ndarray, np.ndarray]], *, augment: bool = True,
                     max_pairs: int | None = None, progress=None) -> tuple[ESPCN, dict]:
    """(refitted copy of ``model``, report with the training MSE/PSNR before and after and the pairs used)."""
    eq = accumulate(model, stacks, augment=augment, max_pairs=max_pairs, progress=progress)
    before = eq.mse(layer_matrix(model))
    w = solve(eq)
    after = eq.mse(w)
    if not after <= before * (1 + 1e-9):  # cannot happen for a solved system; guard against a broken one
        raise UserError(f"the least-squares refit did not lower the training error ({before:.4g} -> {after:.4g})")
    report = {"pairs": eq.pairs, "views": COUNT if augment else 1, "positions": eq.positions,
              "train_mse_before": before, "train_mse_after": after,
              "train_psnr_before": psnr_from_mse(before), "train_psnr_after": psnr_from_mse(after)}
    return with_last_layer(model, w), report


def image_pairs(images: list[tuple[Path, str]], scale: int, channels: int, degradation,
                skipped: list[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Whole training images as one-pair stacks: (1, h, w[, 3]) LR made with ``degradation``, (1, h*s, w*s[, 3]) HR.

    ``images`` are (path, grey) with grey the prep policy for a greyscale file (``network_hr``: "values" or
    "bt601"), so each HR is exactly what prep cut its shards from. Unreadable files are skipped
    and their names appended to ``skipped``.
    """
    from espcn_lab.imaging.colour import network_hr
    from espcn_lab.imaging.degrade import degrade, modcrop
    from espcn_lab.imaging.read import read_image

    for path, grey in images:
        try:
            img = read_image(path, grey="keep").pixels
        except UserError:
            skipped.append(str(path))
            continue
        hr = modcrop(network_hr(img, channels, grey), scale)
        if min(hr.shape[:2]) < scale:
            skipped.append(str(path))
            continue
        yield degrade(hr, scale, degradation)[None], hr[None]


def _training_images(folder: str) -> list[tuple[Path, str]]:
    """A folder of images (grey files as their values, as ``prep`` cuts them by default), or a prep shard folder:
    then the whole source images of its train split (those prep held out for validation stay out) with the
    grey policy its manifest records (none recorded: "bt601", what prep did before 0.2)."""
    from espcn_lab.imaging.colour import GREY_BEFORE_0_2
    from espcn_lab.imaging.read import list_images
    from espcn_lab.shards.format import MANIFEST_NAME, read_manifest
    from espcn_lab.shards.locate import source_images

    if (Path(folder) / MANIFEST_NAME).is_file():
        grey = read_manifest(folder).get("grey", GREY_BEFORE_0_2)
        return [(path, grey) for path in source_images(folder, "train")]
    return [(path, "values") for path in list_images(folder)]


def refit_model(model_spec: str, shards: list[str], output: str, *, image_dirs: list[str] | None = None,
                augment: bool | None = None, max_pairs: int | None = None) -> dict:
    """``espcn-lab refit``: load a model, refit its last layer on its training data, write a .safetensors model.

    The data: whole images of ``image_dirs`` (degraded as the model was trained; no patch borders, so every
    position sees the context it sees at test time), or the pairs of training ``shards``, or both.
    ``augment=None`` uses the flips/rotations setting the model was trained with (``data.augment``).
    """
    import itertools

    from tqdm import tqdm

    from espcn_lab.checkpoint import load_model, save_safetensors
    from espcn_lab.shards.locate import (
        check_manifest,
        degradation_from_manifest,
        manifest_pairs,
        resolve_shards,
    )
    from espcn_lab.shards.reader import read_stacks

    out = Path(output)
    if out.suffix != ".safetensors":
        raise UserError(f"--output {output}: write the refitted model as a .safetensors file")
    loaded = load_model(model_spec)
    image_dirs = list(image_dirs or [])
    if not shards and not image_dirs:
        raise UserError("give the training data: --image-dir FOLDER (whole images) and/or --shards FOLDER (patch pairs)")
    urls, total = [], 0
    for spec in shards:
        found, manifest = resolve_shards(spec)
        check_manifest(manifest, loaded.config.model.scale, loaded.config.model.channels)
        if manifest is not None and degradation_from_manifest(manifest) != loaded.degradation:
            raise UserError(f"{spec}: made with the {degradation_from_manifest(manifest).kind} degradation but "
                            f"{model_spec} was trained with {loaded.degradation.kind}: refit on the shards it was trained on")
        urls += found
        total += manifest_pairs(manifest) if manifest is not None else 0
    if max_pairs is not None and max_pairs < 1:
        raise UserError(f"--max-pairs must be at least 1, got {max_pairs}")
    augment = loaded.config.data.augment if augment is None else augment
    images = [path for folder in image_dirs for path in _training_images(folder)]  # fails early on a missing folder
    total += len(images)
    total = min(total, max_pairs) if max_pairs else total
    skipped: list[str] = []
    m = loaded.config.model
    with tqdm(total=total or None, unit="pair", desc="refit", leave=False) as bar:
        stacks = itertools.chain(image_pairs(images, m.scale, m.channels, loaded.degradation, skipped),
                                 read_stacks({"url": u} for u in urls))
        model, report = refit_last_layer(loaded.model, stacks, augment=augment, max_pairs=max_pairs,
                                         progress=bar.update)
    save_safetensors(model, loaded.config, loaded.degradation, out)
    return {**report, "path": str(out), "model": model_spec, "shards": len(urls), "image_dirs": len(image_dirs),
            "skipped": len(skipped), "skipped_files": skipped}
