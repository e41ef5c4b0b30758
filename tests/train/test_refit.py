"""Closed-form refit of the sub-pixel layer: exact maths on known problems, real shards through the CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _models import make_model, save_model
from _shards import noise_images, patch_stack, t91_images, write_shards
from safetensors.torch import load_file

from espcn_lab.checkpoint import load_model
from espcn_lab.cli import main
from espcn_lab.imaging.degrade import DegradationSpec
from espcn_lab.train.refit import (
    accumulate,
    dihedral_views,
    layer_matrix,
    refit_last_layer,
    solve,
    with_last_layer,
)


def _teacher_stacks(student, scale: int, n: int = 48, seed: int = 1):
    """LR noise stacks and the float HR targets of a teacher sharing the student's body but not its last layer."""
    teacher = with_last_layer(student, layer_matrix(student) + 0.05 * torch.randn_like(layer_matrix(student)))
    g = np.random.default_rng(seed)
    lq = g.integers(0, 256, size=(n, 9, 9), dtype=np.uint8)
    with torch.no_grad():
        hr = teacher(torch.from_numpy(lq).float()[:, None] / 255)[:, 0].numpy() * 255  # float targets, no rounding
    return teacher, [(lq[:20], hr[:20]), (lq[20:], hr[20:])]


@pytest.mark.parametrize("scale,kernels", [(2, (3, 3, 3)), (3, (5, 3, 3)), (4, (3, 3, 5))])
def test_refit_recovers_a_teacher_last_layer_exactly(scale, kernels):
    student, _ = make_model(scale=scale, features=(8, 4), kernels=kernels, seed=scale)
    teacher, stacks = _teacher_stacks(student, scale)
    refitted, report = refit_last_layer(student, stacks, augment=False)  # flipped views are not the teacher's outputs
    assert torch.allclose(layer_matrix(refitted), layer_matrix(teacher), atol=1e-5)
    assert report["train_mse_after"] < 1e-12 < report["train_mse_before"]
    assert report["pairs"] == 48 and report["views"] == 1
    for a, b in zip(refitted.body.parameters(), student.body.parameters()):  # hidden layers untouched
        assert torch.equal(a, b)


def test_normal_equations_give_the_models_own_mse(rng):
    """eq.mse(current layer) equals the MSE of the model's outputs on the same views: the pixel-unshuffle
    order, the padding of the unfold and the bias column all match the network."""
    model, _ = make_model(scale=3, features=(8, 4), kernels=(5, 3, 3), seed=4)
    lq, gt = patch_stack(noise_images(1, size=96)[0], 3)
    eq = accumulate(model, [(lq, gt)], augment=True)
    x = torch.from_numpy(lq).float()[:, None] / 255
    y = torch.from_numpy(gt).float()[:, None] / 255
    with torch.no_grad():
        direct = np.mean([float(F.mse_loss(model(a).double(), b.double())) for a, b in dihedral_views(x, y, 8)])
    assert eq.mse(layer_matrix(model)) == pytest.approx(direct, rel=1e-6)
    assert eq.pairs == len(lq) and eq.positions == 8 * len(lq) * 17 * 17


def test_refit_is_a_fixed_point_and_never_worse_on_real_patches(shared_data):
    stacks = [patch_stack(img, 3) for img in t91_images(shared_data, 4)]
    model = load_model("x3").model
    once, first = refit_last_layer(model, stacks)
    twice, second = refit_last_layer(once, stacks)
    assert first["train_mse_after"] <= first["train_mse_before"]
    assert second["train_mse_after"] == pytest.approx(first["train_mse_after"], rel=1e-9)
    assert torch.allclose(layer_matrix(twice), layer_matrix(once), atol=1e-6)


def test_max_pairs_caps_what_is_read():
    model, _ = make_model(scale=2, features=(8, 4), kernels=(3, 3, 3))
    _, stacks = _teacher_stacks(model, 2)
    assert accumulate(model, stacks, augment=False, max_pairs=25, chunk=7).pairs == 25
    assert accumulate(model, stacks, augment=False, max_pairs=25, chunk=7).positions == 25 * 81


def test_a_rank_deficient_problem_still_solves():
    """A dead feature (all-zero channel) makes X^T X singular; the tiny ridge keeps the solve finite."""
    model, _ = make_model(scale=2, features=(8, 4), kernels=(3, 3, 3))
    with torch.no_grad():
        model.body[2].weight[0].zero_()
        model.body[2].bias[0] = 0.0
    _, stacks = _teacher_stacks(model, 2)
    assert torch.isfinite(solve(accumulate(model, stacks))).all()


def _run(*args):
    return subprocess.run([sys.executable, "-m", "espcn_lab.cli", *map(str, args)], capture_output=True, text=True)


def test_refit_cli_on_prepped_t91_shards(tmp_path, shared_data):
    """Real prep -> real refit -> the written model loads, keeps the body and scores no worse on the training data."""
    images = tmp_path / "images"
    images.mkdir()
    for src in sorted((shared_data / "T91").iterdir())[:5]:
        (images / src.name).write_bytes(src.read_bytes())
    prep = _run("prep", "--image-dir", images, "--out", tmp_path / "shards", "--scale", "3", "--no-progress")
    assert prep.returncode == 0, prep.stderr
    out = tmp_path / "x3_refit.safetensors"
    done = _run("refit", "x3", "--shards", tmp_path / "shards", "-o", out)
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip().splitlines()[-1]
    before, after = (float(v) for v in line.split("training PSNR ")[1].split(" dB")[0].split(" -> "))
    assert after >= before and str(out) in line
    new, old = load_file(str(out)), load_model("x3").model.state_dict()
    assert set(new) == set(old)
    assert all(torch.equal(new[k], old[k]) for k in old if not k.startswith("last."))
    assert not torch.equal(new["last.weight"], old["last.weight"])
    assert load_model(str(out)).config.model.scale == 3


def test_refit_cli_errors_are_one_line(tmp_path, shared_data, capsys):
    shards = write_shards(tmp_path / "x3", t91_images(shared_data, 1), scale=3, n_shards=1)
    x2 = save_model(tmp_path / "x2.safetensors", scale=2, features=(8, 4), kernels=(3, 3, 3))
    cases = [(("refit", x2, "--shards", shards, "-o", tmp_path / "o.safetensors"), "x3"),
             (("refit", "x3", "--shards", shards, "-o", tmp_path / "o.ckpt"), ".safetensors"),
             (("refit", "x3", "--shards", tmp_path / "nowhere", "-o", tmp_path / "o.safetensors"), "no shards"),
             (("refit", "x3", "--shards", shards, "--max-pairs", "0", "-o", tmp_path / "o.safetensors"), "max-pairs")]
    for args, needle in cases:  # in-process: the same entry point as the console script, without 4 interpreter starts
        with pytest.raises(SystemExit) as exit_:
            main([str(a) for a in args])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.strip().count("\n") == 0 and needle in err, err
    assert not (tmp_path / "o.safetensors").exists()


def test_banded_accumulation_equals_one_block(rng):
    """Full images are accumulated in bands of rows; the sums must not depend on the band height."""
    from espcn_lab.train.refit import _accumulate_views

    feats, target = torch.randn(2, 4, 23, 19), torch.randn(2, 9, 23, 19)
    sums = []
    for max_rows in (10**9, 40, 1):
        xtx, xty = torch.zeros(37, 37, dtype=torch.float64), torch.zeros(37, 9, dtype=torch.float64)
        assert _accumulate_views(feats, target, 3, xtx, xty, max_rows=max_rows) == 2 * 23 * 19
        sums.append((xtx, xty))
    for xtx, xty in sums[1:]:
        assert torch.allclose(xtx, sums[0][0], rtol=1e-12) and torch.allclose(xty, sums[0][1], rtol=1e-12)


def test_refit_on_whole_images_skips_and_counts_bad_files(tmp_path, shared_data, capsys):
    images = tmp_path / "images"
    images.mkdir()
    for src in sorted((shared_data / "T91").iterdir())[:3]:
        (images / src.name).write_bytes(src.read_bytes())
    (images / "zz_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "x3_images.safetensors"
    with pytest.raises(SystemExit) as exit_:
        main(["refit", "x3", "--image-dir", str(images), "-o", str(out)])
    assert exit_.value.code == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("refitted on 3 pairs x 8 views (1 unreadable or too small image(s) skipped, e.g. "), line
    assert "zz_corrupt.png)" in line
    before, after = (float(v) for v in line.split("training PSNR ")[1].split(" dB")[0].split(" -> "))
    assert after > before
    assert load_model(str(out)).config.model.scale == 3


def test_refit_without_data_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["refit", "x3", "-o", str(tmp_path / "o.safetensors")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--image-dir" in err and err.strip().count("\n") == 0


def test_refit_sees_the_pixels_prep_cut_its_shards_from(tmp_path, rng):
    """One reader: an EXIF-rotated, half-transparent image gives refit exactly the HR that prep's pairs come from."""
    from PIL import Image

    from data_prep import PrepOptions, run_prep
    from espcn_lab.imaging.degrade import degrade
    from espcn_lab.shards.reader import open_shard, stacks_from_tar
    from espcn_lab.train.refit import image_pairs

    rgba = np.concatenate([rng.integers(0, 256, (60, 90, 3)), np.full((60, 90, 1), 128)], -1).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated: 90 wide x 60 high on disk, 60 x 90 to a viewer
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(rgba).save(folder / "odd.png", exif=exif)
    run_prep(PrepOptions(out=tmp_path / "s", scale=3, image_dir=folder, workers=1, progress=False))
    with open_shard(str(tmp_path / "s" / "train-000000.tar")) as stream:
        lq_patches, gt_patches = next(stacks_from_tar(stream))
    skipped: list[str] = []
    lq, hr = next(image_pairs([(folder / "odd.png", "values")], 3, 1, DegradationSpec(), skipped))
    assert not skipped and hr.shape == (1, 90, 60)  # rotated as a viewer shows it
    assert np.array_equal(gt_patches[0], hr[0, :51, :51]) and np.array_equal(lq[0], degrade(hr[0], 3))
    assert np.array_equal(lq_patches[0], lq[0, :17, :17])


def test_refit_on_a_shard_folder_uses_its_training_images_whole(tmp_path, shared_data, capsys):
    from data_prep import PrepOptions, run_prep

    photos = tmp_path / "photos"
    photos.mkdir()
    for src in sorted((shared_data / "T91").iterdir())[:5]:
        (photos / src.name).write_bytes(src.read_bytes())
    run_prep(PrepOptions(out=tmp_path / "s", scale=3, image_dir=photos, val_images=2, workers=1, progress=False))
    with pytest.raises(SystemExit) as exit_:
        main(["refit", "x3", "--image-dir", str(tmp_path / "s"), "--no-augment", "-o", str(tmp_path / "r.safetensors")])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("refitted on 3 pairs x 1 views")  # 5 - 2 held out


def test_refit_cuts_grey_sources_as_their_shards_were_cut(tmp_path):
    """Whole-image refit pairs of a greyscale source follow the grey policy its prep manifest records (an older
    manifest without one: bt601, what prep did then); a plain folder is read as prep now cuts it (values)."""
    import json

    from PIL import Image

    from data_prep import PrepOptions, run_prep
    from espcn_lab.shards.reader import open_shard, stacks_from_tar
    from espcn_lab.train.refit import _training_images, image_pairs

    folder = tmp_path / "photos"
    folder.mkdir()
    grey = np.tile(np.arange(0, 240, 3, dtype=np.uint8), (60, 1))  # 60 x 80, levels 0..237
    Image.fromarray(grey).save(folder / "grey.png")
    assert _training_images(str(folder)) == [(folder / "grey.png", "values")]
    for policy in ("values", "bt601"):
        run_prep(PrepOptions(out=tmp_path / policy, scale=3, image_dir=folder, grey=policy, workers=1, progress=False))
        images = _training_images(str(tmp_path / policy))
        assert [g for _, g in images] == [policy]
        with open_shard(str(tmp_path / policy / "train-000000.tar")) as stream:
            _, gt_patches = next(stacks_from_tar(stream))
        _, hr = next(image_pairs(images, 3, 1, DegradationSpec(), []))
        assert np.array_equal(gt_patches[0], hr[0, :51, :51]) and (hr.min() == 0) == (policy == "values")
    manifest = tmp_path / "bt601" / "manifest.json"
    old = json.loads(manifest.read_text())
    del old["grey"]
    manifest.write_text(json.dumps(old))
    assert [g for _, g in _training_images(str(tmp_path / "bt601"))] == ["bt601"]
