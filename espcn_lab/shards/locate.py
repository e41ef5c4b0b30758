"""Where the training shards are: ``data.train_shards`` (a folder, glob, brace pattern, list or URL) to shard
urls and the manifest beside them, and the checks that shards fit a model.
"""

from __future__ import annotations

import glob
import re
import warnings
from pathlib import Path
from typing import Optional

import webdataset as wds

from espcn_lab.errors import UserError
from espcn_lab.imaging.degrade import DegradationSpec
from espcn_lab.shards.format import MANIFEST_NAME, read_manifest

_REMOTE = re.compile(r"^(pipe:|[a-z0-9+]+://)")


def _expand_one(spec: str) -> tuple[list[str], Optional[Path]]:
    """One entry of data.train_shards -> (urls, folder that may hold the manifest)."""
    if _REMOTE.match(spec):
        return [spec], None
    path = Path(spec)
    if path.is_dir():
        try:
            names = [s["name"] for s in read_manifest(path)["splits"]["train"]["shards"]]
        except (FileNotFoundError, KeyError):
            names = sorted(p.name for p in path.glob("train-*.tar")) or sorted(p.name for p in path.glob("*.tar"))
        return [str(path / n) for n in names], path
    if "{" in spec:
        urls = list(wds.shardlists.expand_urls(spec))
    elif any(c in spec for c in "*?["):
        urls = sorted(glob.glob(spec))
    else:
        urls = [spec]
    return [u for u in urls if Path(u).is_file()], Path(urls[0]).parent if urls else path.parent


def resolve_shards(train_shards: str | list[str]) -> tuple[list[str], Optional[dict]]:
    """data.train_shards (folder, glob, brace pattern, list, URL) -> (shard urls, manifest or None)."""
    specs = [train_shards] if isinstance(train_shards, str) else list(train_shards)
    if not any(s.strip() for s in specs):
        raise UserError("data.train_shards is empty (give a shard folder, glob, brace pattern, list or URL)")
    urls, manifest = [], None
    for spec in specs:
        found, folder = _expand_one(spec.strip())
        if not found:
            raise UserError(f"data.train_shards: no shards found at {spec}")
        urls += found
        if manifest is None and folder is not None and (folder / MANIFEST_NAME).is_file():
            manifest = read_manifest(folder)
    return urls, manifest


def degradation_from_manifest(manifest: Optional[dict]) -> DegradationSpec:
    """The degradation the shards were made with; bicubic (with a warning) when unknown."""
    if manifest is None:
        warnings.warn("no shard manifest found: assuming the bicubic degradation for validation", stacklevel=2)
        return DegradationSpec()
    return DegradationSpec(**manifest["degradation"])


def check_manifest(manifest: Optional[dict], scale: int, channels: int) -> None:
    """Shards must match the model's scale and channels (``model.scale``, ``model.channels``)."""
    if manifest is None:
        return
    if manifest.get("scale") not in (None, scale):
        raise UserError(f"shards are x{manifest['scale']} but model.scale is {scale}")
    held = {"y": 1, "rgb": 3}.get(manifest.get("channels"), channels)
    if held != channels:
        raise UserError(f"shards hold {manifest['channels']} patches but model.channels is {channels}")


def source_images(folder: str | Path, split: str = "train") -> list[Path]:
    """The source files of one split of a prep shard folder, read back from where prep read them (the
    manifest's source root and each sample's ref): whole images, for scoring or a refit, never the patches."""
    from espcn_lab.shards.reader import sample_metadata

    folder = Path(folder)
    manifest = read_manifest(folder)
    part = manifest.get("splits", {}).get(split)
    label = "held-out" if split == "val" else split
    if not part or not part.get("images"):
        hint = " (run prep with --val-images K)" if split == "val" else ""
        raise UserError(f"{folder}: these shards have no {label} images{hint}")
    source = manifest.get("source", {})
    if source.get("kind") not in ("folder", "imagenet"):
        raise UserError(f"{folder}: the images of a {source.get('kind')!r} source cannot be read back; "
                        "give a folder of images instead")
    root = Path(source["root"])
    files = [root / meta["source"] for shard in part["shards"] for meta in sample_metadata(str(folder / shard["name"]))]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise UserError(f"{folder}: {len(missing)} {label} source image(s) are gone, e.g. {missing[0]} "
                        "(the manifest reads them from where prep found them)")
    return files


def held_out_images(folder: str | Path) -> list[Path]:
    """The images ``espcn-lab prep --val-images K`` held out of a shard folder (its ``val`` split)."""
    return source_images(folder, "val")


def manifest_pairs(manifest: Optional[dict]) -> int:
    """Training pairs listed in the manifest (0 when unknown)."""
    try:
        return int(manifest["splits"]["train"]["pairs"])
    except (TypeError, KeyError):
        return 0


def check_pairs(manifest: Optional[dict], train_shards: str | list[str]) -> None:
    """A manifest that lists 0 training pairs (every image skipped by prep) is refused: nothing to train on."""
    train = (manifest or {}).get("splits", {}).get("train", {})
    if "pairs" in train and int(train["pairs"]) == 0 and (isinstance(train_shards, str) or len(train_shards) == 1):
        counts = manifest.get("counts", {})
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(counts.get("skipped", {}).items())) or "none"
        hint = (f" (smaller than one {manifest['gt_patch']}x{manifest['gt_patch']} HR patch)"
                if "too_small" in counts.get("skipped", {}) and manifest.get("gt_patch") else "")
        raise UserError(f"data.train_shards: {train_shards} hold 0 training pairs: prep used {counts.get('used', 0)} "
                        f"of {counts.get('selected', '?')} images (skipped: {skipped}{hint}); rebuild them with espcn-lab prep")


def readable_shards(urls: list[str]) -> list[str]:
    """The shards that can be read, each one that cannot warned about once; UserError when none can.

    Local files are checked by their first block (``reader.shard_problem``); others are read as they come.
    """
    from espcn_lab.shards.reader import shard_problem

    problems = {u: p for u in urls if (p := shard_problem(u))}
    for url, problem in problems.items():
        warnings.warn(f"skipping shard {url}: {problem}", stacklevel=2)
    good = [u for u in urls if u not in problems]
    if not good:
        url, problem = next(iter(problems.items()))
        many = f"none of the {len(urls)} shards can be read" if len(urls) > 1 else "the only shard cannot be read"
        raise UserError(f"data.train_shards: {many} ({url}: {problem}); rebuild them with espcn-lab prep")
    return good
