"""The on-disk sample contract shared by ``espcn-lab prep`` (writer) and training (reader).

Shards are plain tar files named ``{split}-%06d.tar`` holding WebDataset samples. A sample is
``<key>.lq.npy`` and ``<key>.gt.npy`` (uint8; one pair ``(h, w)`` / ``(h*s, w*s)`` or a stack
``(n, h, w)`` / ``(n, h*s, w*s)``; a trailing channel axis for RGB) and ``<key>.json`` (provenance).
A plain ``webdataset.WebDataset(urls).decode()`` reads them. Tar members carry fixed metadata
(mtime 0, uid 0, mode 0o644) so identical inputs give byte-identical shards.
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import numpy as np

SHARD_PATTERN = "{split}-{index:06d}.tar"


MANIFEST_NAME = "manifest.json"


FORMAT_VERSION = 1


def shard_name(split: str, index: int) -> str:
    return SHARD_PATTERN.format(split=split, index=index)


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def encode_sample(key: str, lq: np.ndarray, gt: np.ndarray, meta: dict[str, Any]) -> list[tuple[str, bytes]]:
    """(member name, bytes) for one sample; lq/gt uint8 with matching leading stack axis."""
    if lq.dtype != np.uint8 or gt.dtype != np.uint8:
        raise TypeError(f"lq/gt must be uint8, got {lq.dtype}/{gt.dtype}")
    if "." in key:
        raise ValueError(f"sample key {key!r} may not contain '.' (WebDataset splits on it)")
    meta_bytes = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    return [(f"{key}.gt.npy", npy_bytes(gt)), (f"{key}.json", meta_bytes), (f"{key}.lq.npy", npy_bytes(lq))]


def add_members(tar: tarfile.TarFile, members: list[tuple[str, bytes]]) -> None:
    """Append members with fixed metadata (deterministic bytes)."""
    for name, data in members:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(data))


def decode_pair(sample: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """WebDataset sample (raw bytes or decoded arrays) -> stacked lq (n, h, w[, c]), gt (n, h*s, w*s[, c]).

    A single pair is recognised by shape: a Y pair is 2-D; an RGB pair is 3-D with gt's first axis
    ``scale`` times lq's (a stack keeps the same first axis ``n``).
    """
    def load(value):
        return value if isinstance(value, np.ndarray) else np.load(io.BytesIO(value), allow_pickle=False)

    lq, gt = load(sample["lq.npy"]), load(sample["gt.npy"])
    single = lq.ndim == 2 or (lq.ndim == 3 and gt.shape[0] != lq.shape[0])
    return (lq[None], gt[None]) if single else (lq, gt)


def read_manifest(path_or_folder: str) -> dict[str, Any]:
    """Load ``manifest.json`` from a shard folder (or the file itself); FileNotFoundError if absent."""
    from pathlib import Path

    path = Path(path_or_folder)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no shard manifest at {path} (made by `espcn-lab prep`)")
    manifest = json.loads(path.read_text())
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported manifest format_version {manifest.get('format_version')!r}")
    return manifest
