"""The run folder's files are written whole or not at all, through ``espcn_lab.files.atomic_output``.

Every file ``fit`` writes (checkpoints, ``config.yaml``, ``summary.json``) goes to a hidden temporary
file beside its target, is flushed to disk and renamed over the target, so a full disk, a read-only
folder or a kill mid-write leaves the previous file exactly as it was. Lightning's own checkpoint
writer stages the file in the system temporary folder and, when that is another filesystem, copies it
over the target (which truncates the old checkpoint before the copy can fail).
"""

from __future__ import annotations

import errno
import io
from pathlib import Path
from typing import Any, Optional, Union

import torch
from lightning.pytorch.plugins import TorchCheckpointIO

from espcn_lab.files import write_bytes_atomic

# errors that mean "this folder cannot be written now" rather than a bug
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


def cannot_write(err: BaseException) -> Optional[str]:
    """``strerror`` of an OSError that says the disk or folder refuses writes (full, read-only, denied), else None."""
    if isinstance(err, OSError) and err.errno in WRITE_ERRNOS:
        return f"{err.strerror}" + (f": {err.filename}" if err.filename else "")
    return None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints serialised in memory, then written whole by ``files.write_bytes_atomic``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Union[str, Path],
                        storage_options: Optional[Any] = None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_bytes_atomic(path, buffer.getbuffer())
