"""The on-disk side of ``espcn-lab prep``: shard plan, atomic shard writing, sidecars, manifest.

Shard k of a split holds the selected images at selection positions [k * n, (k + 1) * n) (n =
images per shard), in listing order, so every shard's content is fixed before any work starts:
shards can be built in any order, by any process or machine, and a rerun skips finished ones.
A shard is written to a hidden temporary name and ``os.replace``d to ``{split}-%06d.tar`` only
when complete, after its sidecar ``.prep/<name>.json`` (samples, pairs, sha256, size, skipped
images). A shard counts as done when both exist and the size matches. ``.prep/args.json`` holds the
arguments that decide the bytes, so a folder made with other arguments is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from espcn_lab.errors import UserError
from espcn_lab.files import write_bytes_atomic
from espcn_lab.shards.format import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    add_members,
    shard_name,
)

STATE_DIR = ".prep"


@dataclass(frozen=True)
class ShardPlan:
    """One shard: its split, index and (listing index, ref) items in listing order."""

    split: str
    index: int
    items: tuple[tuple[int, str], ...]

    @property
    def name(self) -> str:
        return shard_name(self.split, self.index)


def plan_shards(selection: dict[str, list[int]], refs: list[str], images_per_shard: int) -> list[ShardPlan]:
    """All shards of all splits (train first), each a fixed slice of its split's selection."""
    plans = []
    for split, chosen in selection.items():
        for k, start in enumerate(range(0, len(chosen), images_per_shard)):
            items = tuple((i, refs[i]) for i in sorted(chosen[start:start + images_per_shard]))
            plans.append(ShardPlan(split, k, items))
    return plans


def write_json_atomic(path: Path, data: Any) -> None:
    write_bytes_atomic(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class ShardWriter:
    """Streams samples into a hidden temp tar; ``finish`` publishes it atomically with its sidecar."""

    def __init__(self, folder: Path, plan: ShardPlan):
        self.folder, self.plan = folder, plan
        self.tmp = folder / f".{plan.name}.tmp"  # one owner per shard, even across --part runs
        self.tar = tarfile.open(self.tmp, mode="w", format=tarfile.PAX_FORMAT)
        self.samples = self.pairs = self.received = 0
        self.skipped: list[dict[str, str]] = []

    def add(self, members: list[tuple[str, bytes]], pairs: int) -> None:
        add_members(self.tar, members)
        self.samples, self.pairs = self.samples + 1, self.pairs + pairs

    def skip(self, ref: str, reason: str, message: str) -> None:
        self.skipped.append({"ref": ref, "reason": reason, "message": message})

    def finish(self) -> dict[str, Any]:
        self.tar.close()
        final = self.folder / self.plan.name
        info = {"name": self.plan.name, "split": self.plan.split, "images": len(self.plan.items),
                "samples": self.samples, "pairs": self.pairs, "size": self.tmp.stat().st_size,
                "sha256": sha256_file(self.tmp), "skipped": self.skipped}
        write_json_atomic(self.folder / STATE_DIR / f"{self.plan.name}.json", info)
        os.replace(self.tmp, final)
        return info

    def abort(self) -> None:
        try:
            self.tar.close()  # flushes: may fail again on a full disk
        except OSError:
            pass
        finally:
            self.tmp.unlink(missing_ok=True)


def shard_info(folder: Path, plan: ShardPlan) -> dict[str, Any] | None:
    """The sidecar of a finished shard, or None if the shard is missing, unfinished or resized."""
    sidecar, tar = folder / STATE_DIR / f"{plan.name}.json", folder / plan.name
    if not (sidecar.is_file() and tar.is_file()):
        return None
    try:
        info = json.loads(sidecar.read_text())
    except ValueError:
        return None
    return info if info.get("size") == tar.stat().st_size and info.get("images") == len(plan.items) else None


def prepare_folder(folder: Path, identity: dict[str, Any], overwrite: bool) -> None:
    """Create the output folder or check it was made with the same arguments (else UserError)."""
    args_path = folder / STATE_DIR / "args.json"
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out {folder} exists and is not a folder")
    if overwrite:
        _remove_outputs(folder)
    elif args_path.is_file():
        stored = json.loads(args_path.read_text())
        diff = sorted(k for k in identity.keys() | stored.keys() if identity.get(k) != stored.get(k))
        if diff:
            changes = ", ".join(f"{k}: {stored.get(k)!r} -> {identity.get(k)!r}" for k in diff[:4])
            raise UserError(f"{folder} was made with other arguments ({changes}); use another --out or --overwrite")
    elif folder.is_dir() and (any(folder.glob("*-*.tar")) or (folder / MANIFEST_NAME).exists()):
        raise UserError(f"{folder} already holds shards not made by this prep; use another --out or --overwrite")
    (folder / STATE_DIR).mkdir(parents=True, exist_ok=True)
    write_json_atomic(args_path, identity)


_PREP_NAMES = re.compile(r"(train|val)-\d{6}\.tar|\.(train|val)-\d{6}\.tar\.tmp")


def _remove_outputs(folder: Path) -> None:
    """Delete only what prep writes: shards and their temporary files by their exact names, a manifest prep
    made, the state folder. Never other files (a user's ``train-photos.tar`` stays)."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if _PREP_NAMES.fullmatch(path.name) and path.is_file():
            path.unlink()
    manifest = folder / MANIFEST_NAME
    try:
        made_by_prep = json.loads(manifest.read_text()).get("created_by") == "espcn-lab prep"
    except (OSError, ValueError, AttributeError):
        made_by_prep = False
    if made_by_prep:
        manifest.unlink()
    shutil.rmtree(folder / STATE_DIR, ignore_errors=True)


def build_manifest(header: dict[str, Any], infos: list[dict[str, Any]], listed: int, ignored: int) -> dict[str, Any]:
    """The manifest (schema in ``espcn_lab.shard_format``) from the run header and every shard's sidecar."""
    skipped = Counter(s["reason"] for info in infos for s in info["skipped"])
    splits: dict[str, Any] = {}
    for info in infos:
        split = splits.setdefault(info["split"], {"images": 0, "pairs": 0, "samples": 0, "shards": []})
        split["images"] += info["samples"]
        split["pairs"] += info["pairs"]
        split["samples"] += info["samples"]
        split["shards"].append({k: info[k] for k in ("name", "samples", "pairs", "sha256")})
    selected = sum(info["images"] for info in infos)
    counts = {"listed": listed, "ignored_files": ignored, "selected": selected,
              "used": sum(s["images"] for s in splits.values()), "skipped": dict(sorted(skipped.items()))}
    return {"format_version": FORMAT_VERSION, **header, "counts": counts, "splits": splits}


def write_manifest(folder: Path, manifest: dict[str, Any], name: str = MANIFEST_NAME) -> Path:
    """Write the manifest atomically (the last file a complete dataset gets); drop leftover temp shards."""
    path = folder / name
    if name == MANIFEST_NAME:
        for stale in folder.glob(".*.tar.tmp"):
            stale.unlink(missing_ok=True)
    write_json_atomic(path, manifest)
    return path
