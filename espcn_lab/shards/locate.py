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

from espcn_lab.config import Config
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


def check_manifest(manifest: Optional[dict], cfg: Config) -> None:
    """Shards must match the model's scale and channels."""
    if manifest is None:
        return
    if manifest.get("scale") not in (None, cfg.model.scale):
        raise UserError(f"shards are x{manifest['scale']} but model.scale is {cfg.model.scale}")
    channels = {"y": 1, "rgb": 3}.get(manifest.get("channels"), cfg.model.channels)
    if channels != cfg.model.channels:
        raise UserError(f"shards hold {manifest['channels']} patches but model.channels is {cfg.model.channels}")


def manifest_pairs(manifest: Optional[dict]) -> int:
    """Training pairs listed in the manifest (0 when unknown)."""
    try:
        return int(manifest["splits"]["train"]["pairs"])
    except (TypeError, KeyError):
        return 0
