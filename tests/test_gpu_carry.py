"""benchmarks/gpu_carry.py: the training photos travel to the GPU machine smaller, and still cut the same pairs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import webdataset as wds
from _shards import noise_images
from PIL import Image

from data_prep import PrepOptions, run_prep

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_carry", ROOT / "benchmarks" / "gpu_carry.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pairs(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    urls = sorted(str(p) for p in folder.glob("*.tar"))
    return {s["__key__"]: (s["lq.npy"], s["gt.npy"]) for s in wds.WebDataset(urls, shardshuffle=False).decode()}


def prep(source: Path, out: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    run_prep(PrepOptions(out=out, scale=3, image_dir=source, workers=1, progress=False))
    return pairs(out)


def test_an_rgb_png_travels_as_its_y_and_prep_cuts_the_same_pairs(tmp_path):
    source = tmp_path / "photos"
    source.mkdir()
    rgb = noise_images(3, size=120, seed=4)
    for i, img in enumerate(rgb):
        Image.fromarray(img).save(source / f"rgb{i}.png")
    Image.fromarray(rgb[0]).save(source / "photo.jpg", quality=90)
    Image.fromarray(rgb[1][..., 1]).save(source / "grey.png")  # a greyscale source: its own values are its Y
    carried = tmp_path / "carried"
    load_script().copy_all(sorted(source.iterdir()), carried, luma=True)

    for i in range(3):
        assert Image.open(carried / f"rgb{i}.png").mode == "L"
    for name in ("photo.jpg", "grey.png"):  # a JPEG (its Y as a PNG is larger) and a grey PNG travel as they are
        assert (carried / name).read_bytes() == (source / name).read_bytes()
    original, travelled = prep(source, tmp_path / "a"), prep(carried, tmp_path / "b")
    assert sorted(original) == sorted(travelled) and len(original) == 5
    for key, (lq, gt) in original.items():
        assert np.array_equal(lq, travelled[key][0]) and np.array_equal(gt, travelled[key][1]), key
