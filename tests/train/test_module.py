"""ESPCNModule: per-layer learning rates, the plateau schedule, checkpoint payload."""

import math

import pytest
import torch

from espcn_lab.config import ConfigError, load_config, to_dict
from espcn_lab.imaging.degrade import DegradationSpec
from espcn_lab.train.module import PLATEAU_MONITOR, ESPCNModule, pixel_loss


def _module(*overrides):
    return ESPCNModule(load_config(None, list(overrides)), DegradationSpec())


# a cosine_time schedule from 1e-3 down to 1e-5 over 100 s of training
COSINE_100S = ("optim.schedule=cosine_time", "optim.learning_rate=0.001", "optim.final_learning_rate=0.00001",
               "trainer.max_time=00:00:01:40")


def test_last_layer_learns_ten_times_slower_and_schedule_is_the_papers():
    conf = _module("optim.name=sgd")
    conf.configure_optimizers()
    opt_sched = conf.configure_optimizers()
    opt, sched = opt_sched["optimizer"], opt_sched["lr_scheduler"]["scheduler"]
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.9
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.01, 0.01 * 0.1]
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == 22729  # x3 paper model
    assert opt_sched["lr_scheduler"]["monitor"] == PLATEAU_MONITOR
    assert sched.min_lrs == [0.0001, 0.0001, 0.0001 * 0.1]
    for _ in range(12):  # no improvement: the rate halves after `plateau_patience` epochs
        sched.step(1.0)
    assert opt.param_groups[0]["lr"] == 0.005 and opt.param_groups[2]["lr"] == 0.0005


def test_cosine_schedule_runs_from_start_to_final_rate_over_max_epochs():
    opt_sched = _module("optim.schedule=cosine", "optim.learning_rate=0.001", "optim.final_learning_rate=0.00001",
                        "trainer.max_epochs=5").configure_optimizers()
    opt, sched = opt_sched["optimizer"], opt_sched["lr_scheduler"]["scheduler"]
    rates = []
    for _ in range(6):
        rates.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    assert rates[0] == [0.001, 0.001, 0.0001]
    assert abs(rates[2][0] - (0.00001 + 0.00099 * 0.5)) < 1e-12  # halfway down the cosine
    assert abs(rates[4][0] - 0.00001) < 1e-12 and abs(rates[4][2] - 0.000001) < 1e-12  # last epoch: final rate
    assert rates[5] == rates[4]  # and stays there


def test_prelu_parameters_get_a_group_and_adam_is_available():
    opt = _module("model.activation=prelu", "optim.name=adam").configure_optimizers()["optimizer"]
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[-1]["name"] == "activations"
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == 22729 + 2


def test_checkpoint_payload_is_plain_and_weights_are_model_prefixed():
    module = _module("model.features=[4]", "model.kernels=[3,3]")
    ckpt = {}
    module.on_save_checkpoint(ckpt)
    assert ckpt["espcn_lab"]["config"] == to_dict(module.cfg)
    assert ckpt["espcn_lab"]["degradation"] == {"kind": "bicubic", "sigma": None}
    assert all(k.startswith("model.") for k in module.state_dict())


def test_every_parameter_gets_a_gradient_from_the_mse_loss():
    module = _module("model.features=[8,4]")
    lq, gt = torch.rand(2, 1, 17, 17), torch.rand(2, 1, 51, 51)
    torch.nn.functional.mse_loss(module(lq), gt).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_training_batches_are_augmented_on_the_device_and_stay_aligned():
    from types import SimpleNamespace

    from espcn_lab.imaging.degrade import DegradationSpec
    from espcn_lab.train.module import ESPCNModule

    cfg = load_config(None, ["model.features=[8,4]", "data.augment=true", "trainer.channels_last=false"])
    module = ESPCNModule(cfg, DegradationSpec())
    module._trainer = SimpleNamespace(training=True, global_rank=0, global_step=0)
    module.on_train_start()
    lq = torch.randint(0, 255, (64, 1, 5, 5), dtype=torch.uint8)
    gt = lq.repeat_interleave(3, 2).repeat_interleave(3, 3)
    out_lq, out_gt = module.on_after_batch_transfer((lq, gt), 0)
    assert out_lq.dtype == torch.float32 and out_lq.max() <= 1.0
    assert torch.equal(out_gt[:, :, 1::3, 1::3], out_lq)  # flipped/rotated together
    assert not torch.equal(out_lq, lq.float() / 255)  # and really transformed
    plain = ESPCNModule(load_config(None, ["model.features=[8,4]", "data.augment=false"]), DegradationSpec())
    plain._trainer = module._trainer
    plain.on_train_start()
    assert torch.equal(plain.on_after_batch_transfer((lq, gt), 0)[0], lq.float() / 255)


def test_cosine_time_schedule_follows_the_share_of_max_time_spent(monkeypatch):
    import espcn_lab.train.module as module_mod

    now = [100.0]
    monkeypatch.setattr(module_mod.time, "monotonic", lambda: now[0])
    opt_sched = _module(*COSINE_100S).configure_optimizers()
    assert opt_sched["lr_scheduler"]["interval"] == "step"
    opt, sched = opt_sched["optimizer"], opt_sched["lr_scheduler"]["scheduler"]
    rates = []
    for t in (0.0, 50.0, 100.0, 250.0):
        now[0] = 100.0 + t
        opt.step()
        sched.step()
        rates.append([g["lr"] for g in opt.param_groups])
    assert abs(rates[0][0] - 0.001) < 1e-12 and abs(rates[0][2] - 0.0001) < 1e-12
    assert abs(rates[1][0] - (0.00001 + 0.00099 * 0.5)) < 1e-12  # half the budget: halfway down
    assert abs(rates[2][0] - 0.00001) < 1e-12 and abs(rates[2][2] - 0.000001) < 1e-12
    assert rates[3] == rates[2]  # past the budget it stays at the final rate


def test_cosine_time_schedule_reads_lightnings_timer_so_a_resumed_run_continues():
    from lightning.pytorch.callbacks import Timer

    module = _module(*COSINE_100S)
    timer = Timer(duration="00:00:01:40")
    timer.load_state_dict({"time_elapsed": {"train": 50.0}})  # what a checkpoint half-way through restores
    module._trainer = type("T", (), {"callbacks": [timer]})()
    opt_sched = module.configure_optimizers()
    opt = opt_sched["optimizer"]
    assert abs(opt.param_groups[0]["lr"] - (0.00001 + 0.00099 * 0.5)) < 1e-12


def test_cosine_time_warmup_rises_linearly_then_follows_the_cosine(monkeypatch):
    import pytest

    import espcn_lab.train.module as module_mod
    from espcn_lab.config import ConfigError

    now = [100.0]
    monkeypatch.setattr(module_mod.time, "monotonic", lambda: now[0])
    opt_sched = _module(*COSINE_100S, "optim.warmup_steps=4").configure_optimizers()
    opt, sched = opt_sched["optimizer"], opt_sched["lr_scheduler"]["scheduler"]
    rates = [opt.param_groups[0]["lr"]]
    for _ in range(5):  # no time passes: the cosine stays at its peak, only the warm-up moves
        opt.step()
        sched.step()
        rates.append(opt.param_groups[0]["lr"])
    assert rates == pytest.approx([0.00025, 0.0005, 0.00075, 0.001, 0.001, 0.001], abs=1e-12)
    assert abs(opt.param_groups[2]["lr"] - 0.0001) < 1e-12  # the last layer's tenth, after the warm-up too
    now[0] = 150.0  # half the budget: the cosine's halfway rate, the warm-up long done
    opt.step()
    sched.step()
    assert abs(opt.param_groups[0]["lr"] - (0.00001 + 0.00099 * 0.5)) < 1e-12
    resumed = _module(*COSINE_100S, "optim.warmup_steps=4").configure_optimizers()
    resumed["lr_scheduler"]["scheduler"].load_state_dict(sched.state_dict())  # what a resumed run's checkpoint restores
    resumed["optimizer"].step()
    resumed["lr_scheduler"]["scheduler"].step()
    # its clock starts anew here (no Timer attached: the Timer test above covers time), so the cosine is at its peak;
    # a second warm-up (step 1 of 4) would give 0.0005
    assert abs(resumed["optimizer"].param_groups[0]["lr"] - 0.001) < 1e-12
    for bad in ([*COSINE_100S, "optim.warmup_steps=-1"],
                ["optim.warmup_steps=10", "optim.schedule=plateau"]):
        with pytest.raises(ConfigError, match="optim.warmup_steps"):
            _module(*bad)


def test_cosine_time_needs_a_valid_max_time():
    import pytest

    from espcn_lab.config import ConfigError, max_time_seconds

    with pytest.raises(ConfigError, match="needs trainer.max_time"):
        _module("optim.schedule=cosine_time")
    for bad in ("5min", "01:00:00", "0:0:5:0"):  # what Lightning's Timer would reject later, with a traceback
        with pytest.raises(ConfigError, match="DD:HH:MM:SS"):
            _module(f"trainer.max_time={bad}")
    with pytest.raises(ConfigError, match="more than zero"):
        _module("trainer.max_time=00:00:00:00")
    assert max_time_seconds("01:02:03:04") == 93784


def test_valid_loss_is_the_mse_of_the_centre_that_padding_never_touches(monkeypatch):
    module = _module("model.features=[8,4]", "optim.valid_loss=true")
    monkeypatch.setattr(module, "log", lambda *a, **k: None)
    monkeypatch.setattr(module, "_check_finite", lambda *a: None)
    torch.manual_seed(0)
    lq, gt = torch.rand(2, 1, 17, 17), torch.rand(2, 1, 51, 51)
    loss = module.training_step((lq, gt), 0)
    loss.backward()
    grads = [p.grad.clone() for p in module.parameters()]
    module.zero_grad()
    c = 4 * 3  # radius 4 LR pixels (5-3-3) at x3
    want = torch.nn.functional.mse_loss(module(lq)[..., c:-c, c:-c], gt[..., c:-c, c:-c])
    want.backward()
    assert torch.allclose(loss, want, atol=1e-7)
    assert all(torch.allclose(g, p.grad, atol=1e-6) for g, p in zip(grads, module.parameters()))
    whole = _module("model.features=[8,4]")
    whole.load_state_dict(module.state_dict())
    monkeypatch.setattr(whole, "log", lambda *a, **k: None)
    monkeypatch.setattr(whole, "_check_finite", lambda *a: None)
    assert not torch.allclose(whole.training_step((lq, gt), 0), loss)


def test_pixel_losses_have_their_golden_values_and_charbonnier_is_smooth_at_zero():
    sr, target = torch.tensor([0.0, 0.5], requires_grad=True), torch.tensor([0.3, 0.5])
    assert pixel_loss("mse")(sr, target).item() == pytest.approx(0.045)
    assert pixel_loss("l1")(sr, target).item() == pytest.approx(0.15)
    charbonnier = pixel_loss("charbonnier", 1e-3)(sr, target)
    assert charbonnier.item() == pytest.approx((math.sqrt(0.09 + 1e-6) + 1e-3) / 2, rel=1e-6)
    charbonnier.backward()  # d/dd sqrt(d^2 + eps^2) = d / sqrt(d^2 + eps^2): -0.3/0.3 / 2 and exactly 0 at d = 0
    assert sr.grad.tolist() == pytest.approx([-0.5 * 0.3 / math.sqrt(0.09 + 1e-6), 0.0])


@pytest.mark.parametrize("name", ["l1", "charbonnier"])
def test_training_step_optimises_the_configured_loss_for_the_hr_and_the_teacher_term(monkeypatch, name):
    module = _module("model.features=[8,4]", f"optim.loss={name}", "optim.distill_weight=0.25")
    logged = {}
    monkeypatch.setattr(module, "log", lambda key, value, **k: logged.__setitem__(key, value))
    monkeypatch.setattr(module, "_check_finite", lambda *a: None)
    torch.manual_seed(0)
    lq, gt, teacher = torch.rand(2, 1, 17, 17), torch.rand(2, 1, 51, 51), torch.rand(2, 1, 51, 51)
    loss = module.training_step((lq, gt, teacher), 0)
    f = pixel_loss(name, 1e-3)
    sr = module(lq)
    assert torch.allclose(logged["train/hr_loss"], f(sr, gt), atol=1e-7)
    assert torch.allclose(loss, 0.75 * f(sr, gt) + 0.25 * f(sr, teacher), atol=1e-7)
    assert not torch.allclose(loss, 0.75 * pixel_loss("mse")(sr, gt) + 0.25 * pixel_loss("mse")(sr, teacher))


def test_loss_keys_are_checked():
    with pytest.raises(ConfigError, match=r"optim.loss: must be one of \['mse', 'l1', 'charbonnier'\], got 'huber'"):
        _module("optim.loss=huber")
    with pytest.raises(ConfigError, match="optim.charbonnier_eps: must be > 0, got 0.0"):
        _module("optim.charbonnier_eps=0")
