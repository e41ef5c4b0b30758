"""espcn-lab eval: the standard protocol, golden bicubic numbers, t-test, JSON, CLI errors."""

import json

import numpy as np
import pytest
from PIL import Image

from espcn_lab.checkpoint import save_safetensors
from espcn_lab.cli import main
from espcn_lab.config import load_config
from espcn_lab.errors import UserError
from espcn_lab.evaluate.run import evaluate, format_table, parse_datasets
from espcn_lab.evaluate.score import paired_p_value
from espcn_lab.imaging.colour import hr_luma
from espcn_lab.imaging.degrade import DegradationSpec
from espcn_lab.imaging.read import iter_hr_images
from espcn_lab.model import build_model


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    cfg = load_config(None, ["model.scale=3", "model.features=[8,4]"])
    return save_safetensors(build_model(cfg.model), cfg, DegradationSpec(), tmp_path_factory.mktemp("m") / "m.safetensors")


def test_bicubic_on_set5_x3_matches_the_published_protocol(model_file, shared_data):
    results = evaluate(str(model_file), {"Set5": str(shared_data / "Set5")}, device="cpu")
    s = results["datasets"]["Set5"]
    assert round(s["bicubic"]["psnr_y"], 2) == 30.39  # SRCNN / ESPCN tables: 30.39 dB
    assert abs(s["bicubic"]["ssim_y"] - 0.8682) < 0.002
    assert len(s["images"]) == 5 and s["images"][0]["name"] == "baby"
    assert s["model"]["psnr_y"] < s["bicubic"]["psnr_y"]  # an untrained net loses...
    assert s["p_value_vs_bicubic"] < 0.01  # ...significantly
    table = format_table(results)
    assert "Set5 (5 images)" in table and "30.39" in table


def test_greyscale_images_are_scored_on_their_grey_values(shared_data):
    bridge = dict(iter_hr_images(shared_data / "Set14"))["bridge"]
    assert bridge.ndim == 2 and hr_luma(bridge) is bridge


def test_paired_t_test_matches_scipy_by_hand():
    ours, base = [30.1, 31.0, 29.5, 32.2], [29.9, 30.1, 29.4, 31.0]
    d = np.subtract(ours, base)
    t = d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))
    from scipy.stats import t as student

    assert paired_p_value(ours, base) == pytest.approx(2 * student.sf(abs(t), len(d) - 1))
    assert np.isnan(paired_p_value([30.0], [29.0]))


def test_cli_eval_writes_json_and_reports_bad_input(model_file, shared_data, tmp_path, capsys):
    (tmp_path / "tiny").mkdir()
    for name, img in list(iter_hr_images(shared_data / "Set5"))[:2]:
        Image.fromarray(img[:60, :66]).save(tmp_path / "tiny" / f"{name}.png")
    out = tmp_path / "r.json"
    with pytest.raises(SystemExit) as done:
        main(["eval", str(model_file), "--data", f"T={tmp_path / 'tiny'}", "--json", str(out), "--device", "cpu"])
    assert done.value.code in (0, None)
    doc = json.loads(out.read_text())
    assert doc["scale"] == 3 and [im["name"] for im in doc["datasets"]["T"]["images"]] == ["baby", "bird"]
    assert "paired t-test" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    for args, message in [([str(model_file), "--data", f"E={tmp_path / 'empty'}"], "no images"),
                          ([str(model_file), "--data", f"S={shared_data / 'Set5'}", "--scale", "2"], "is x3"),
                          ([str(tmp_path / "nope.ckpt"), "--data", f"S={shared_data / 'Set5'}"], "not found")]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main(["eval", *args])
        err = capsys.readouterr().err
        assert exited.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_parse_datasets():
    assert parse_datasets(["A=x/y", "z/Set9"]) == {"A": "x/y", "Set9": "z/Set9"}
    with pytest.raises(UserError):
        parse_datasets(["=x"])


def test_rgb_models_are_scored_on_y(tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (30, 33, 3), dtype=np.uint8)
    (tmp_path / "set").mkdir()
    Image.fromarray(img).save(tmp_path / "set" / "a.png")
    cfg = load_config(None, ["model.scale=3", "model.channels=3", "model.features=[4]", "model.kernels=[3,3]"])
    path = save_safetensors(build_model(cfg.model), cfg, DegradationSpec(), tmp_path / "rgb.safetensors")
    s = evaluate(str(path), {"one": str(tmp_path / "set")}, device="cpu")["datasets"]["one"]
    assert np.isfinite(s["model"]["psnr_y"]) and np.isnan(s["p_value_vs_bicubic"])


def test_odd_files_score_as_their_8_bit_twins(model_file, tmp_path, shared_data):
    """16-bit grey, palette and EXIF-rotated files are read by the one reader: the same numbers as plain PNGs
    (a 16-bit grey image once scored 'inf dB' bicubic: it was read as all white)."""
    bridge = dict(iter_hr_images(shared_data / "Set14"))["bridge"][:120, :150]
    plain, odd = tmp_path / "plain", tmp_path / "odd"
    plain.mkdir()
    odd.mkdir()
    Image.fromarray(bridge).save(plain / "a.png")
    Image.fromarray(bridge.astype(np.uint16) * 257).save(odd / "a.png")
    results = evaluate(str(model_file), {"plain": str(plain), "odd": str(odd)}, device="cpu")["datasets"]
    for method in ("bicubic", "model"):
        assert np.isfinite(results["odd"][method]["psnr_y"])
        assert results["odd"][method]["psnr_y"] == pytest.approx(results["plain"][method]["psnr_y"], abs=1e-9)
