"""Fast sequential reader of patch shards: tar stream -> (lq, gt) uint8 stacks.

``webdataset.tarfile_to_samples`` + ``np.load`` cost ~1 ms per sample (Python ``tarfile`` objects
and ``.npy`` header parsing); training needs thousands of samples per second per core. This reader
parses the 512-byte ustar headers and ``.npy`` headers directly and wraps payloads with
``np.frombuffer`` (no copy). Local shards are memory-mapped (no copy out of the page cache either); any
other stream ``webdataset.gopen`` opens (``pipe:``, URLs) is read in large chunks.
"""

from __future__ import annotations

import ast
import mmap
import os
import warnings
from collections.abc import Iterator
from functools import lru_cache
from typing import Optional

import numpy as np
import webdataset as wds

from espcn_lab.errors import UserError

_BLOCK = 512


_ZERO_BLOCK = b"\0" * _BLOCK


@lru_cache(maxsize=4096)
def _npy_header(header: bytes) -> tuple[np.dtype, tuple[int, ...]]:
    meta = ast.literal_eval(header.decode("latin1"))
    if meta["fortran_order"]:
        raise ValueError("fortran-ordered .npy is not supported in shards")
    return np.dtype(meta["descr"]), tuple(meta["shape"])


def npy_from_bytes(data: bytes | memoryview) -> np.ndarray:
    """The bytes of a ``.npy`` file -> read-only array viewing them."""
    if data[:6] != b"\x93NUMPY":
        raise ValueError("not a .npy payload")
    if data[6] == 1:
        start, length = 10, int.from_bytes(data[8:10], "little")
    else:
        start, length = 12, int.from_bytes(data[8:12], "little")
    dtype, shape = _npy_header(bytes(data[start:start + length]))
    return np.frombuffer(data, dtype=dtype, offset=start + length).reshape(shape)


def _octal(field: bytes) -> int:
    field = field.rstrip(b"\0 ").strip()
    return int(field, 8) if field else 0


_CHUNK = 8 << 20  # bytes read per call: one read() per many members instead of three per member


def tar_members(stream, chunk: int = _CHUNK) -> Iterator[tuple[str, memoryview]]:
    """(name, payload) of regular files in a tar stream (ustar, GNU long names, pax paths).

    The stream is read in large chunks; payloads are zero-copy views of them.
    """
    buf, pos, long_name = memoryview(b""), 0, None
    chunk = getattr(stream, "chunk", chunk)

    def need(n: int) -> bool:  # make buf[pos:pos + n] available; False at the end of the stream
        nonlocal buf, pos
        if len(buf) - pos >= n:
            return True
        data = stream.read(max(chunk, n - (len(buf) - pos)))
        buf, pos = memoryview(bytes(buf[pos:]) + data) if len(buf) > pos else memoryview(data), 0
        return len(buf) >= n

    while True:
        if not need(_BLOCK):
            return
        header = bytes(buf[pos:pos + _BLOCK])
        if header == _ZERO_BLOCK:
            return
        size, kind = _octal(header[124:136]), header[156:157]
        padded = size + (-size % _BLOCK)
        if not need(_BLOCK + padded) and len(buf) - pos < _BLOCK + size:  # (missing end padding is harmless)
            raise EOFError("truncated tar member")
        payload = buf[pos + _BLOCK:pos + _BLOCK + size]
        pos = min(pos + _BLOCK + padded, len(buf))
        if kind == b"L":
            long_name = bytes(payload).rstrip(b"\0").decode()
        elif kind == b"x":
            for record in bytes(payload).decode().splitlines():
                if " path=" in record:
                    long_name = record.split(" path=", 1)[1]
        elif kind in (b"0", b"\0"):
            prefix = header[345:500].rstrip(b"\0").decode() if header[257:262] == b"ustar" else ""
            name = long_name or "/".join(p for p in (prefix, header[:100].rstrip(b"\0").decode()) if p)
            long_name = None
            yield name, payload


def _split(name: str) -> tuple[str, str]:
    base = name.rsplit("/", 1)[-1]
    key, _, field = base.partition(".")
    return name[: len(name) - len(base)] + key, field


class _MappedFile:
    """A local file as a read-only memory map: ``read`` returns zero-copy views (no page-cache copy)."""

    def __init__(self, path: str):
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)  # map all pages in one call (Linux)
            self.view = memoryview(mmap.mmap(f.fileno(), 0, flags=flags, prot=mmap.PROT_READ)) if size else memoryview(b"")
        self.pos = 0
        self.chunk = max(len(self.view), 1)  # tar_members takes it all at once

    def read(self, n: int = -1) -> memoryview:
        end = len(self.view) if n < 0 else min(self.pos + n, len(self.view))
        chunk, self.pos = self.view[self.pos:end], end
        return chunk

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:  # the map closes when the last array viewing it is gone
        self.view = memoryview(b"")


def _local_path(url: str) -> Optional[str]:
    path = url[len("file:"):] if url.startswith("file:") else url
    if ":" in path.split("/", 1)[0] and not os.path.exists(path):  # pipe:..., http://..., s3://...
        return None
    return path if os.path.isfile(path) else None


def open_shard(url: str):
    """A readable stream of a shard: local files are memory-mapped, anything else goes to ``webdataset.gopen``."""
    path = _local_path(url)
    return _MappedFile(path) if path else wds.gopen(url, "rb")


def stacks_from_tar(stream) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Samples of one shard -> (lq (n, h, w[, 3]), gt (n, h*s, w*s[, 3])) uint8 stacks."""
    current, fields = None, {}
    for name, payload in tar_members(stream):
        key, field = _split(name)
        if key != current:
            if "lq.npy" in fields and "gt.npy" in fields:
                yield _stack(fields)
            current, fields = key, {}
        if field in ("lq.npy", "gt.npy"):
            fields[field] = payload
    if "lq.npy" in fields and "gt.npy" in fields:
        yield _stack(fields)


def _stack(fields: dict[str, memoryview]) -> tuple[np.ndarray, np.ndarray]:
    lq, gt = npy_from_bytes(fields["lq.npy"]), npy_from_bytes(fields["gt.npy"])
    single = lq.ndim == 2 or (lq.ndim == 3 and gt.shape[0] != lq.shape[0])  # same rule as decode_pair
    return (lq[None], gt[None]) if single else (lq, gt)


class ShardStreamError(UserError):
    """No training pair came from the shards within the reader's bound (every shard broken or empty).

    Raised inside the training stream; a DataLoader worker hands it to the main process re-raised with
    its whole traceback as the message, which is cut back here to the one line it started as.
    """

    def __init__(self, message: str):
        last = message.strip().splitlines()[-1] if message.strip() else message
        prefix = f"{type(self).__module__}.{type(self).__qualname__}: "
        super().__init__(last[len(prefix):] if "\n" in message.strip() and last.startswith(prefix) else message)


# A broken shard is one whose bytes are not a tar of samples (the reader's own errors and numpy's).
_BROKEN = (OSError, ValueError, EOFError, SyntaxError, KeyError, TypeError)


def read_stacks(urls: Iterator[dict[str, str]], max_failures: int = 20,
                warned: Optional[set[str]] = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """WebDataset url dicts -> stacks of every shard in turn; an unreadable shard warns and is skipped.

    A shard that fails or holds no pair is a failure; ``max_failures`` of them in a row (the training
    stream passes a bound that covers a whole pass over its shards) raise ``ShardStreamError`` instead
    of looping forever. A shard that breaks part-way still counts as a failure after its good samples.
    ``warned``: the shards already reported (a stream passes the same set every pass: one warning each).
    """
    failures, last, warned = 0, "", set() if warned is None else warned
    for item in urls:
        url, pairs = item["url"], 0
        try:
            with open_shard(url) as stream:
                for lq, gt in stacks_from_tar(stream):
                    pairs += len(lq)
                    yield lq, gt
            failures, last = (0, last) if pairs else (failures + 1, f"{url}: holds no training pair")
        except _BROKEN as err:
            failures, last = failures + 1, f"{url}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            if url not in warned:
                warned.add(url)
                warnings.warn(f"skipping unreadable shard {last}", stacklevel=2)
        if failures >= max_failures:
            raise ShardStreamError(f"no training pair could be read: {failures} shard reads in a row failed or were "
                                   f"empty (last: {last}); check data.train_shards or rebuild them with espcn-lab prep")


def _header_checksum_ok(header: bytes) -> bool:
    """The ustar checksum (sum of the block with its checksum field read as spaces) matches."""
    try:
        stored = _octal(header[148:156])
    except ValueError:
        return False
    return stored == sum(header[:148]) + 8 * 32 + sum(header[156:])


def shard_problem(url: str) -> Optional[str]:
    """Why a local shard cannot hold samples (missing, empty, not a tar), or None; other urls: None.

    One block is read, so checking every shard before training is cheap; a shard truncated further in
    is found by ``read_stacks`` when it gets there.
    """
    path = _local_path(url)
    if path is None:
        return None if ":" in url.split("/", 1)[0] else "no such file"  # pipe:, http://, ... are read as they come
    try:
        with open(path, "rb") as f:
            header = f.read(_BLOCK)
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"
    if not header:
        return "empty file"
    if len(header) < _BLOCK:
        return f"not a tar file ({len(header)} bytes)"
    if header == _ZERO_BLOCK:
        return "holds no samples (an empty tar)"
    if not _header_checksum_ok(header):
        return "not a tar file (its first block is not a tar header)"
    return None


def sample_metadata(url: str) -> Iterator[dict]:
    """The ``json`` provenance record of every sample of one shard, in order."""
    import json

    with open_shard(url) as stream:
        for name, payload in tar_members(stream):
            if _split(name)[1] == "json":
                yield json.loads(bytes(payload))
