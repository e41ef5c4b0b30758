"""benchmarks/val_curve.py: the validation curve of a run, from its metrics.csv and the segments kept at each resume."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
X4_SIXTH = ROOT / "benchmarks/results/greyluma_sixth_p33_ecb/x4_greyluma_sixth_p33_tanh_ecb"  # a committed real run


def load_script():
    spec = importlib.util.spec_from_file_location("val_curve", ROOT / "benchmarks" / "val_curve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_curve_of_a_committed_run_is_its_validation_rows():
    vc = load_script()
    points = vc.curve(vc.metric_files(X4_SIXTH))
    assert [s for s, _ in points] == [12499, 24999, 37499, 47338]
    assert [round(v["imagenet_heldout"], 3) for _, v in points] == [28.975, 28.986, 28.989, 28.991]  # docs/results.md
    assert set(points[0][1]) == {"imagenet_heldout", "div2k_heldout", "bsds_heldout"}


def test_a_resumed_run_joins_its_segments_in_step_order(tmp_path, capsys):
    vc = load_script()
    lines = (X4_SIXTH.parent / (X4_SIXTH.name + ".metrics.csv")).read_text().splitlines()
    header, rows = lines[0], lines[1:]
    step = header.split(",").index("step")
    imagenet = header.split(",").index("val/imagenet_heldout/psnr_y")
    cut = 1 + next(i for i, r in enumerate(rows)  # resumed after the 25k validation, whose row the new file repeats
                   if r.split(",")[step] == "24999" and r.split(",")[imagenet])
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.1.csv").write_text("\n".join([header, *rows[:cut]]) + "\n")
    (run / "metrics.csv").write_text("\n".join([header, *rows[cut - 1:]]) + "\n")  # the resumed step logged again
    assert vc.metric_files(run) == [run / "metrics.1.csv", run / "metrics.csv"]
    assert vc.curve(vc.metric_files(run)) == vc.curve(vc.metric_files(X4_SIXTH))
    assert vc.main([str(run)]) == 0 and "step   47338" in capsys.readouterr().out
    assert vc.main([str(tmp_path / "none")]) == 2 and "no metrics" in capsys.readouterr().err


def test_segments_are_ordered_by_their_number_and_the_live_file_comes_last(tmp_path):
    vc = load_script()
    for name in ("metrics.csv", "metrics.10.csv", "metrics.2.csv", "metrics.9.csv"):
        (tmp_path / name).write_text("step\n")
    assert [p.name for p in vc.metric_files(tmp_path)] == ["metrics.2.csv", "metrics.9.csv", "metrics.10.csv", "metrics.csv"]
