"""Running the real command line inside a test, and the run options the training tests share."""

from __future__ import annotations

import csv

from espcn_lab.cli import main


def run_cli(argv, capsys) -> tuple[int, str, str]:
    """``espcn-lab ARGV`` in this process -> (exit code, stdout, stderr)."""
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def fit_overrides(root, shards, name, *extra, latency: bool = True) -> list[str]:
    """A tiny fit on ``shards`` validating on ``root/val``, into ``root/runs/name`` (configs/smoke.yaml's overrides)."""
    return [f"data.train_shards={shards}", "data.val_dirs={}", f"data.val_dirs.Tiny={root / 'val'}",
            "model.features=[8,4]", "data.samples_per_epoch=128", "data.batch_size=32", "data.shuffle_buffer=64",
            f"run.dir={root / 'runs'}", f"run.name={name}", "trainer.log_every_n_steps=1",
            *([] if latency else ["log.latency=false"]), *extra]


def logged(run_dir, key) -> list[float]:
    """Every value a run logged under ``key`` in its ``metrics.csv``, in order."""
    with open(run_dir / "metrics.csv") as f:
        return [float(r[key]) for r in csv.DictReader(f) if r.get(key)]
