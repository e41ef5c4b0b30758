"""Writing outputs without ever losing a file: every command that writes a result (images, videos, models,
exports, JSON reports) writes it here, to a hidden temporary name beside the destination, and renames it
over the destination only once it is complete. A failed, interrupted or killed write leaves at most a
hidden ``.NAME.partial-PID`` file, never a half file under the final name, and never deletes or changes
a file the command did not finish writing. Also: refusing to write over one of the command's inputs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from espcn_lab.errors import UserError, write_error


def partial_name(path: Path) -> Path:
    """The hidden temporary name a write to ``path`` goes through (same folder, so the rename is atomic)."""
    return path.with_name(f".{path.name}.partial-{os.getpid()}{path.suffix}")


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on any failure it is removed.

    The folder is created if needed. OSErrors become one-line errors naming ``path`` (``OutOfRoom`` for a
    full disk, UserError for a read-only folder); other exceptions (a Ctrl-C included) propagate after the clean-up.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{path}: cannot create its folder ({err.strerror or err})") from None
    tmp = partial_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise write_error(err, f"{path}: cannot write ({err.strerror or err}); nothing was changed there") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes | str | memoryview) -> Path:
    """``path.write_bytes(data)`` through ``atomic_output``, flushed to disk before the rename (a power cut
    after the rename cannot leave an empty file under the name); text is written as UTF-8."""
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def _identity(path: Path):
    try:
        st = os.stat(path)
        return st.st_dev, st.st_ino
    except OSError:
        return None


def refuse_overwriting_inputs(inputs: Iterable[Path], outputs: Iterable[Path]) -> None:
    """UserError if an output is (the same file as, links included) an input: writing it would destroy it."""
    seen = {key: src for src in inputs if (key := _identity(src)) is not None}
    for dst in outputs:
        same = seen.get(_identity(dst)) if dst.exists() else None
        if same is not None:
            raise UserError(f"output {dst} is the input {same}; choose another -o (inputs are never overwritten)")
