"""Image sources for ``espcn-lab prep`` and the seeded selection of images from their sorted listing.

A source lists its images as sorted string refs (a relative path, or a row number for Hugging Face
datasets) and returns an image's encoded bytes by ref, so the same tree or dataset lists the same
way on any machine. Selection draws from that listing with a seeded permutation.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from espcn_lab.errors import UserError
from espcn_lab.imaging.read import check_regular_file, is_image_file

IMAGENET_DEFAULT_IMAGES = 50_000  # the paper's "50,000 randomly selected ImageNet images"


@dataclass(frozen=True)
class Listing:
    """Sorted image refs of a source, files ignored for their extension, and a digest of the refs."""

    refs: list[str]
    ignored: int
    digest: str


def _digest(refs: list[str]) -> str:
    return hashlib.sha256("\n".join(refs).encode()).hexdigest()


class FolderSource:
    """Any folder tree of images (every format Pillow reads), or the ILSVRC layout (``train/<wnid>/*.JPEG``)."""

    kind = "folder"
    random_access = True

    def __init__(self, root: Path, imagenet: bool = False):
        root = Path(root)
        if not root.is_dir():
            raise UserError(f"image folder not found: {root}")
        if imagenet and (root / "train").is_dir():
            root = root / "train"
        self.root, self.imagenet = root, imagenet
        self.kind = "imagenet" if imagenet else "folder"

    def listing(self) -> Listing:
        refs, ignored = [], 0
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            rel = Path(dirpath).relative_to(self.root)
            if self.imagenet and len(rel.parts) != 1:  # ImageNet: only files inside class folders
                continue
            for name in filenames:
                if is_image_file(Path(name)):
                    refs.append((rel / name).as_posix())
                else:
                    ignored += 1
        refs.sort()
        if not refs:
            layout = "class folders (train/<wnid>/*.JPEG)" if self.imagenet else "any folder tree"
            raise UserError(f"no images (any format Pillow reads) found in {self.root} [{layout}]")
        return Listing(refs, ignored, _digest(refs))

    def fetch(self, ref: str) -> bytes:
        """The file's bytes; a FIFO or device named like an image is refused (ImageError), never read."""
        path = self.root / ref
        check_regular_file(path)
        return path.read_bytes()

    def describe(self) -> dict:
        return {"kind": self.kind, "root": str(self.root)}


class HFSource:
    """A Hugging Face ``datasets`` split (hub name, local dataset folder or ``save_to_disk`` folder).

    The image column is read undecoded (``Image(decode=False)``) so broken images are skipped and
    counted like files. Refs are row numbers. Streaming reads rows in order and never holds the set.
    """

    kind = "hf"

    def __init__(self, name: str, split: str = "train", column: str = "image", streaming: bool = False):
        self.name, self.split, self.column, self.streaming = name, split, column, streaming
        self.random_access = not streaming
        self._ds = None

    def __getstate__(self):  # workers reopen the (memory-mapped) dataset themselves
        return {**self.__dict__, "_ds": None}

    def _dataset(self):
        if self._ds is None:
            self._ds = _load_hf(self.name, self.split, self.column, self.streaming)
        return self._ds

    def listing(self) -> Listing:
        ds = self._dataset()
        if self.streaming:
            rows = ds.info.splits[self.split].num_examples if ds.info.splits and self.split in ds.info.splits else None
            if not rows:  # size unknown up front: count once (reads the stream)
                rows = sum(1 for _ in ds.select_columns([self.column]))
        else:
            rows = len(ds)
        if rows == 0:
            raise UserError(f"Hugging Face dataset {self.name!r} split {self.split!r} has no rows")
        refs = [f"{i:09d}" for i in range(rows)]
        return Listing(refs, 0, _digest([self.name, self.split, self.column, str(rows)]))

    def fetch(self, ref: str) -> bytes:
        return _image_bytes(self._dataset()[int(ref)][self.column])

    def stream(self) -> Iterator[tuple[int, bytes]]:
        for i, row in enumerate(self._dataset()):
            yield i, _image_bytes(row[self.column])

    def describe(self) -> dict:
        return {"kind": "hf", "name": self.name, "split": self.split, "column": self.column}


def _image_bytes(value) -> bytes:
    if isinstance(value, dict):
        if value.get("bytes"):
            return value["bytes"]
        return Path(value["path"]).read_bytes() if value.get("path") else b""
    return value or b""


def _load_hf(name: str, split: str, column: str, streaming: bool):
    """Open one split with its image column undecoded; UserError for a missing dataset/split/column."""
    import datasets

    try:
        path = Path(name)
        if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
            ds = datasets.load_from_disk(str(path))
            ds = ds[split] if isinstance(ds, datasets.DatasetDict) else ds
            ds = ds.to_iterable_dataset() if streaming else ds
        else:
            ds = datasets.load_dataset(name, split=split, streaming=streaming)
    except (FileNotFoundError, ValueError, KeyError, datasets.exceptions.DatasetNotFoundError) as err:
        raise UserError(f"cannot open Hugging Face dataset {name!r} split {split!r}: {err}") from None
    if column not in (ds.column_names or []):
        raise UserError(f"dataset {name!r} has no column {column!r} (columns: {ds.column_names})")
    return ds.cast_column(column, datasets.Image(decode=False))


def select(listed: int, num_images: int, val_images: int, seed: int) -> dict[str, list[int]]:
    """Seeded choice from a listing of ``listed`` images: {"train": [...], "val": [...]} listing indices."""
    if num_images + val_images > listed:
        raise UserError(f"asked for {num_images} + {val_images} (val) images but the source lists only {listed}")
    order = np.random.default_rng(seed).permutation(listed)
    return {"train": order[:num_images].tolist(), "val": order[num_images:num_images + val_images].tolist()}


def parse_part(text: str) -> tuple[int, int]:
    """'i/N' -> (i, N) with 0 <= i < N."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise UserError(f"--part must look like i/N (e.g. 0/4), got {text!r}") from None
    if not 0 <= i < n:
        raise UserError(f"--part {text}: need 0 <= i < N")
    return i, n
