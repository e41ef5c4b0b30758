"""Where the development data lives, written once: ``$ESPCN_LAB_DATA`` if set, else ``shared/data`` beside
the repository checkout (``../shared/data`` from its root), the folder the tests, the benchmark scripts
and ``espcn-lab bench``'s default peer models read. Nothing is ever downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data() -> Path:
    """The data folder (Set5, Set14, T91, BSD200, Vid4, peers/); it may not exist on a user's machine."""
    env = os.environ.get("ESPCN_LAB_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def peer_models() -> Path:
    """OpenCV dnn_superres model files (ESPCN/, FSRCNN/) inside the data folder."""
    return shared_data() / "peers" / "opencv_dnn_superres"
