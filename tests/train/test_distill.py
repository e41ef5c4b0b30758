"""optim.distill_*: a frozen teacher's output as a second target. The mixing formula on real fits, the teacher kept
out of checkpoints, a resume, and bad teachers refused with one line before anything is written."""

import pytest
import torch
from _cli import fit_overrides, logged, run_cli

from espcn_lab.checkpoint import load_model, save_safetensors
from espcn_lab.config import load_config
from espcn_lab.errors import ConfigError, UserError
from espcn_lab.evaluate.ensemble import SelfEnsemble
from espcn_lab.imaging.degrade import DegradationSpec
from espcn_lab.model import build_model
from espcn_lab.train.augment import DihedralAugment
from espcn_lab.train.distill import TeacherTargets, load_teacher
from espcn_lab.train.fit import fit


def _model_file(path, *overrides, seed=1):
    cfg = load_config(None, list(overrides))
    torch.manual_seed(seed)
    return save_safetensors(build_model(cfg.model), cfg, DegradationSpec(), path)


def test_the_loss_mixes_the_hr_and_teacher_targets_by_distill_weight(inputs, monkeypatch):
    """A student started from its teacher has nothing to learn from it: at weight 1 the loss is 0 and the weights
    stay the teacher's; at weight 0.5 the first loss is exactly half the HR loss; at weight 0 it is the HR loss."""
    monkeypatch.setenv("WANDB_MODE", "disabled")
    root, shards = inputs
    teacher = _model_file(root / "teacher_8_4.safetensors", "model.features=[8,4]")
    start = [f"run.init_from={teacher}", f"optim.distill_from={teacher}", "trainer.max_epochs=1"]
    fit(load_config("configs/smoke.yaml", fit_overrides(root, shards, "w1", *start, "optim.distill_weight=1",
                                                        latency=False)))
    run = root / "runs" / "w1"
    assert max(logged(run, "train/loss")) < 1e-12 and min(logged(run, "train/hr_loss")) > 1e-3
    kept = load_model(str(run / "last.ckpt")).model.state_dict()
    assert all(torch.allclose(kept[k], v, atol=1e-7) for k, v in load_model(str(teacher)).model.state_dict().items())

    fit(load_config("configs/smoke.yaml", fit_overrides(root, shards, "w05", *start, "optim.distill_weight=0.5",
                                                        latency=False)))
    first_total, first_hr = logged(root / "runs" / "w05", "train/loss")[0], logged(root / "runs" / "w05", "train/hr_loss")[0]
    assert first_total == pytest.approx(0.5 * first_hr, rel=1e-5)

    fit(load_config("configs/smoke.yaml", fit_overrides(root, shards, "w0", *start, "optim.distill_weight=0",
                                                        latency=False)))
    assert logged(root / "runs" / "w0", "train/loss") == pytest.approx(logged(root / "runs" / "w0", "train/hr_loss"))


def test_a_wider_teacher_stays_out_of_checkpoints_and_a_resumed_run_loads_it_again(inputs, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    root, shards = inputs
    teacher = _model_file(root / "teacher_32_16.safetensors", "model.features=[32,16]")
    args = fit_overrides(root, shards, "wide", f"optim.distill_from=[{teacher},{teacher}]",
                         "optim.distill_self_ensemble=true", latency=False)
    summary = fit(load_config("configs/smoke.yaml", args))
    ckpt = torch.load(root / "runs" / "wide" / "last.ckpt", map_location="cpu", weights_only=True)
    assert set(ckpt["state_dict"]) == {f"model.{k}" for k in build_model(load_config(None, args).model).state_dict()}
    resumed = fit(load_config("configs/smoke.yaml", args + ["run.resume=last", "trainer.max_epochs=3"]))
    assert resumed["steps"] == summary["steps"] + 4 and resumed["status"] == "finished"


def test_the_teacher_is_the_mean_of_the_named_models_over_their_flips_when_asked(tmp_path):
    a = _model_file(tmp_path / "a.safetensors", "model.features=[8,4]", seed=1)
    b = _model_file(tmp_path / "b.safetensors", "model.features=[16,8]", seed=2)
    x = torch.rand(2, 1, 17, 13)
    with torch.no_grad():
        one = load_teacher(load_config(None, [f"optim.distill_from={a}"]), DegradationSpec())
        assert torch.equal(one(x), load_model(str(a)).model(x)) and not any(p.requires_grad for p in one.parameters())
        both = load_teacher(load_config(None, [f"optim.distill_from=[{a},{b}]", "optim.distill_self_ensemble=true"]),
                            DegradationSpec())
        mean = (SelfEnsemble(load_model(str(a)).model)(x) + SelfEnsemble(load_model(str(b)).model)(x)) / 2
        assert torch.allclose(both(x), mean, atol=1e-6)
    assert load_teacher(load_config(None, []), DegradationSpec()) is None


def test_bad_teachers_are_one_line_before_anything_is_written(inputs, tmp_path, capsys):
    root, shards = inputs
    x2 = _model_file(tmp_path / "x2.safetensors", "model.scale=2")
    gaussian = tmp_path / "gaussian.safetensors"
    cfg = load_config(None, [])
    save_safetensors(build_model(cfg.model), cfg, DegradationSpec("gaussian"), gaussian)
    cases = [(f"optim.distill_from={x2}", "is x2 with 1 channel(s), the run trains x3 with 1"),
             (f"optim.distill_from={gaussian}", "was trained for {'kind': 'gaussian'"),
             (f"optim.distill_from={tmp_path / 'missing.safetensors'}", "optim.distill_from: model not found"),
             ("optim.distill_self_ensemble=true", "needs a teacher in optim.distill_from"),
             ("optim.distill_weight=1.5", "optim.distill_weight: must be in [0, 1], got 1.5")]
    for i, (override, message) in enumerate(cases):
        code, _, err = run_cli(["fit", "configs/smoke.yaml", *fit_overrides(root, shards, f"bad{i}", override)], capsys)
        lines = [line for line in err.strip().splitlines() if line.startswith("espcn-lab")]
        assert code == 2 and len(lines) == 1 and message in lines[0], err
        assert not (root / "runs" / f"bad{i}").exists()
    with pytest.raises(ConfigError):
        load_config(None, ["optim.distill_weight=-0.1"])
    with pytest.raises(UserError, match="the shards hold"):
        load_teacher(load_config(None, [f"optim.distill_from={gaussian}"]), DegradationSpec())


def test_teacher_outputs_are_remembered_per_stored_patch_within_the_cap(tmp_path):
    """Remembered outputs are the teacher's own (a repeated patch costs no pass); past the cap they are computed."""
    a = _model_file(tmp_path / "a.safetensors", "model.features=[8,4]")
    teacher = load_teacher(load_config(None, [f"optim.distill_from={a}", "optim.distill_self_ensemble=true"]),
                           DegradationSpec())
    torch.manual_seed(0)
    first = torch.randint(0, 256, (6, 1, 17, 17), dtype=torch.uint8)
    second = torch.cat([first[3:], torch.randint(0, 256, (2, 1, 17, 17), dtype=torch.uint8)])
    with torch.no_grad():
        want = teacher(torch.cat([first, second]).float() / 255)
    targets = TeacherTargets(teacher)
    got = torch.cat([targets(first), targets(second)])
    assert torch.allclose(got, want, atol=1e-6)
    assert (targets.hits, targets.misses, len(targets.memory)) == (3, 8, 8)
    capped = TeacherTargets(teacher, cache_bytes=3 * 51 * 51 * 4)
    assert torch.allclose(torch.cat([capped(first), capped(second)]), want, atol=1e-6)
    assert len(capped.memory) == 3 and capped.stored <= capped.cache_bytes
    assert torch.allclose(TeacherTargets(teacher, cache_bytes=0)(second), want[6:], atol=1e-6)


def test_flips_move_the_teacher_output_with_the_pair_which_for_a_self_ensemble_is_the_teacher_on_the_flipped_patch(tmp_path):
    a = _model_file(tmp_path / "a.safetensors", "model.features=[8,4]")
    teacher = load_teacher(load_config(None, [f"optim.distill_from={a}", "optim.distill_self_ensemble=true"]),
                           DegradationSpec())
    lq = torch.randint(0, 256, (16, 1, 17, 17), dtype=torch.uint8)
    gt = torch.randint(0, 256, (16, 1, 51, 51), dtype=torch.uint8)
    out = TeacherTargets(teacher)(lq)
    lq_a, gt_a, out_a, gt_again = DihedralAugment(3)(lq, gt, out, gt.float())
    assert torch.equal(gt_again, gt_a.float()) and not torch.equal(lq_a, lq)  # one transform per pair, all tensors
    with torch.no_grad():
        assert torch.allclose(out_a, teacher(lq_a.float() / 255), atol=1e-5)
