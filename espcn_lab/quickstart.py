"""``espcn-lab quickstart``: the whole platform in one command on bundled images.

Builds shards from 16 bundled photos (``espcn-lab prep``), trains the paper's x3 network for a
few minutes (``espcn-lab fit``), then scores the last checkpoint on the bundled Set5 against
bicubic (``espcn-lab eval``). Rerunning reuses the shards and starts a new run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ASSETS = Path(__file__).parent / "assets"


def quickstart(out: Path, minutes: float = 3.0) -> dict[str, Any]:
    """Prep + fit + eval under ``out``; returns the evaluation results (see ``evaluate.evaluate``)."""
    from data_prep.prep import PrepOptions, run_prep
    from espcn_lab.config import load_config
    from espcn_lab.errors import UserError
    from espcn_lab.evaluate.run import evaluate
    from espcn_lab.train.fit import fit

    if minutes <= 0:
        raise UserError(f"--minutes must be > 0, got {minutes}")
    images = ASSETS / "quickstart"
    shards = out / "shards-x3"
    print(f"[1/3] prep: {images / 'train'} -> {shards}", flush=True)
    run_prep(PrepOptions(out=shards, scale=3, image_dir=images / "train"))
    seconds = max(1, round(minutes * 60))
    cfg = load_config(ASSETS / "quickstart.yaml", [
        f"data.train_shards={shards}", f"data.val_dirs.Set5={images / 'Set5'}", f"run.dir={out / 'runs'}",
        f"trainer.max_time=00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"])
    print(f"[2/3] fit: the paper's x3 network for {minutes:g} min", flush=True)
    summary = fit(cfg)
    print(f"[3/3] eval: {summary['run_dir']}/last.ckpt on Set5", flush=True)
    return evaluate(str(Path(summary["run_dir"]) / "last.ckpt"), {"Set5": str(images / "Set5")})
