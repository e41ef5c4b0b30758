"""The validation curve of fit runs: every validation's PSNR-Y per held-out set, from a run folder's metrics.csv and the
segments a resumed run keeps before each resume (metrics.N.csv), in step order. The numbers docs/results.md quotes as
"held-out ImageNet during the runs".

    python benchmarks/val_curve.py runs/x3_greyluma_eighth_p49_tanh_ecb/main [RUN_DIR ...]
    python benchmarks/val_curve.py benchmarks/results/greyluma_eighth_p49_ecb/x3_greyluma_eighth_p49_tanh_ecb
      (a results prefix: PREFIX.metrics.csv and PREFIX.metrics.N.csv, as benchmarks/mix_ecb.sh copies them)
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def metric_files(target: Path) -> list[Path]:
    """A run folder's metrics*.csv, or a results prefix's PREFIX.metrics*.csv; segments first, the live file last."""
    files = target.glob("metrics*.csv") if target.is_dir() else target.parent.glob(target.name + ".metrics*.csv")
    return sorted(files, key=_segment)


def _segment(path: Path) -> float:
    """N of ``metrics.N.csv`` (numerically: 10 after 9); the live ``metrics.csv`` after every segment."""
    n = path.name.removesuffix(".csv").rsplit(".", 1)[-1]
    return int(n) if n.isdigit() else float("inf")


def curve(files: list[Path]) -> list[tuple[int, dict[str, float]]]:
    """(step, {set: PSNR-Y}) of every validation row, by step; a step met twice (a resume) keeps its last row."""
    rows: dict[int, dict[str, float]] = {}
    for path in files:
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                sets = {k.split("/")[1]: float(v) for k, v in row.items()
                        if k.startswith("val/") and k.endswith("/psnr_y") and k.count("/") == 2 and v}
                if sets:
                    rows[int(row["step"])] = sets
    return sorted(rows.items())


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    for arg in argv:
        files = metric_files(Path(arg))
        if not files:
            print(f"val_curve: no metrics*.csv for {arg}", file=sys.stderr)
            return 2
        print(arg)
        for step, sets in curve(files):
            print(f"  step {step:>7}  " + "  ".join(f"{name} {value:.3f}" for name, value in sorted(sets.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
