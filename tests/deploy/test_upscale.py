"""``espcn-lab upscale`` end to end on image files: modes, EXIF, folders, failures."""

from __future__ import annotations

import numpy as np
import pytest
from _cli import run_cli
from PIL import Image

from espcn_lab.imaging.degrade import upscale_bicubic
from tests._models import save_model


@pytest.fixture(scope="module")
def model_x2(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("m") / "x2.safetensors", scale=2, features=(16, 8))


def test_modes_are_kept_and_alpha_is_bicubic(model_x2, tmp_path, rng, capsys):
    arrays = {"rgb.png": rng.integers(0, 256, (12, 10, 3)), "rgba.png": rng.integers(0, 256, (12, 10, 4)),
              "grey.png": rng.integers(0, 256, (12, 10)), "la.png": rng.integers(0, 256, (12, 10, 2))}
    for name, arr in arrays.items():
        Image.fromarray(arr.astype(np.uint8)).save(tmp_path / name)
    code, out, err = run_cli(["upscale", str(model_x2), *(str(tmp_path / n) for n in arrays), "-o",
                           str(tmp_path / "out"), "--backend", "torch", "--no-progress"], capsys)
    assert code == 0, err
    modes = {n: Image.open(tmp_path / "out" / n).mode for n in arrays}
    assert modes == {"rgb.png": "RGB", "rgba.png": "RGBA", "grey.png": "L", "la.png": "LA"}
    alpha = np.asarray(Image.open(tmp_path / "out" / "rgba.png"))[..., 3].astype(int)
    assert alpha.shape == (24, 20)
    assert np.abs(alpha - upscale_bicubic(arrays["rgba.png"][..., 3].astype(np.uint8), 2)).max() <= 1


def test_exif_orientation_is_applied(model_x2, tmp_path, rng, capsys):
    img = Image.fromarray(rng.integers(0, 256, (8, 14, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "photo.jpg", exif=exif.tobytes())
    code, _, err = run_cli(["upscale", str(model_x2), str(tmp_path / "photo.jpg"), "-o", str(tmp_path / "up.png"),
                         "--backend", "torch"], capsys)
    assert code == 0, err
    assert Image.open(tmp_path / "up.png").size == (16, 28)  # displayed 8 wide x 14 high, doubled


def test_folder_keeps_names_and_a_bad_file_fails_alone(model_x2, tmp_path, rng, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)).save(frames / f"f{i:03d}.png")
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    code, out, err = run_cli(["upscale", str(model_x2), str(frames), str(bad), "-o", str(tmp_path / "out")], capsys)
    assert code == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f000.png", "f001.png", "f002.png"]
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and "notes.png" in errors[0] and "Traceback" not in err


def test_default_output_name_and_missing_model(model_x2, tmp_path, rng, capsys):
    Image.fromarray(rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    assert run_cli(["upscale", str(model_x2), str(tmp_path / "a.png")], capsys)[0] == 0
    assert Image.open(tmp_path / "a_x2.png").size == (10, 10)
    code, _, err = run_cli(["upscale", str(tmp_path / "nope.safetensors"), str(tmp_path / "a.png")], capsys)
    assert code == 2 and err.count("\n") == 1 and "model not found" in err
