"""``espcn-lab quickstart``: the whole platform in one command on bundled images.

Builds shards from 16 bundled photos (``espcn-lab prep``), trains the paper's x3 network for a fixed
number of optimizer steps (``espcn-lab fit``; a line every 10 s with the step, steps/s and the ETA),
then scores the last checkpoint on the bundled Set5 against bicubic (``espcn-lab eval``). The budget is
counted in steps, not minutes, so a busy or slow machine takes longer but ends with the same model; an
optional ``minutes`` cap stops earlier (the old time budget). Rerunning reuses the shards and starts a
new run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

ASSETS = Path(__file__).parent / "assets"

# 18 epochs of 313 steps: ~3 minutes of training on the 2-core development machine (30 steps/s with one
# core to itself), +0.90 dB over bicubic on Set5; a busier or slower machine takes longer for the same model
DEFAULT_STEPS = 5634
# One intra-op thread for training (the batch reader thread takes the second core of a 2-core machine):
# torch's default, a thread per core, makes the threads of every convolution wait for each other when
# anything else runs on the machine. Measured on the 2-core development machine with one core busy:
# 21 steps/s with one thread, 4.5 with two (the 411 steps of a 3-minute run on a busy machine).
ONE_THREAD = 1


def quickstart(out: Path, steps: int = DEFAULT_STEPS, minutes: Optional[float] = None) -> dict[str, Any]:
    """Prep + fit + eval under ``out``; returns the evaluation results (see ``evaluate.evaluate``)."""
    import torch

    from data_prep.prep import PrepOptions, run_prep
    from espcn_lab.config import load_config
    from espcn_lab.errors import UserError
    from espcn_lab.evaluate.run import evaluate
    from espcn_lab.train.fit import fit

    if steps < 1:
        raise UserError(f"--steps must be >= 1, got {steps}")
    if minutes is not None and minutes <= 0:
        raise UserError(f"--minutes must be > 0, got {minutes}")
    images = ASSETS / "quickstart"
    shards = out / "shards-x3"
    print(f"[1/3] prep: {images / 'train'} -> {shards}", flush=True)
    run_prep(PrepOptions(out=shards, scale=3, image_dir=images / "train"))
    base = load_config(ASSETS / "quickstart.yaml")
    epochs = math.ceil(steps / math.ceil(base.data.samples_per_epoch / base.data.batch_size))  # the cosine's length
    overrides = [f"data.train_shards={shards}", f"data.val_dirs.Set5={images / 'Set5'}", f"run.dir={out / 'runs'}",
                 f"trainer.max_steps={steps}", f"trainer.max_epochs={epochs}"]
    cap = ""
    if minutes is not None:
        seconds = max(1, round(minutes * 60))
        overrides.append(f"trainer.max_time=00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}")
        cap = f", at most {minutes:g} min"
    cfg = load_config(ASSETS / "quickstart.yaml", overrides)
    print(f"[2/3] fit: the paper's x3 network for {steps} steps{cap}", flush=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(ONE_THREAD)
    try:
        summary = fit(cfg, progress="lines")
        print(f"[3/3] eval: {summary['run_dir']}/last.ckpt on Set5", flush=True)
        return evaluate(str(Path(summary["run_dir"]) / "last.ckpt"), {"Set5": str(images / "Set5")})
    finally:
        torch.set_num_threads(threads)
