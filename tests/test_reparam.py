"""model.reparam=ecb: each convolution trains as ECB branches and folds into the plain network.

The fold is checked against an independent, branch-by-branch computation (each branch run as the
separate convolutions ECBSR describes, the 1x1 output padded with its own bias so the sum is exactly
one convolution), and the contract around it end to end: fit -> checkpoint -> load -> export."""

import pytest
import torch
import torch.nn.functional as F

from espcn_lab.checkpoint import load_model, save_safetensors
from espcn_lab.config import load_config
from espcn_lab.errors import ConfigError
from espcn_lab.imaging.degrade import DegradationSpec
from espcn_lab.model import ESPCN, RepConv2d, count_parameters


def _branches_one_by_one(layer: RepConv2d, x: torch.Tensor) -> torch.Tensor:
    k = layer.kernel_size[0]
    out = F.conv2d(x, layer.weight, layer.bias, padding=k // 2)
    b0 = layer.es_b0[None, :, None, None]
    mid = F.conv2d(x, layer.es_w0[..., None, None])  # the 1x1 output without its bias: zero-padded, then the bias added
    small = int(layer.es_w1.shape[-1] ** 0.5)
    w1 = layer.es_w1.reshape(*layer.es_w1.shape[:2], small, small)
    mid = F.pad(mid, (k // 2,) * 4) + b0
    out = out + F.conv2d(mid, w1)[..., (k - small) // 2:, (k - small) // 2:][..., :x.shape[2], :x.shape[3]]
    for name in layer.edges:
        t = F.pad(F.conv2d(x, getattr(layer, f"{name}_w0")[..., None, None]), (k // 2,) * 4)
        c = t.shape[1]
        w = (getattr(layer, f"{name}_scale")[:, None, None, None] * getattr(layer, f"{name}_mask")).expand(c, 1, 3, 3)
        r = (k - 3) // 2
        out = out + F.conv2d(t, w, groups=c)[..., r:r + x.shape[2], r:r + x.shape[3]]
    return out


def _randomised(module: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return module


@pytest.mark.parametrize("c_in,c_out,k", [(1, 8, 5), (8, 4, 3), (4, 9, 3), (3, 6, 7), (2, 5, 1)])
def test_the_one_kernel_equals_the_branches_run_one_by_one(c_in, c_out, k):
    torch.manual_seed(k)
    layer = _randomised(RepConv2d(c_in, c_out, k))
    x = torch.rand(2, c_in, 13, 10)
    want = _branches_one_by_one(layer, x)
    assert torch.allclose(layer(x), want, atol=1e-5), (layer(x) - want).abs().max()
    conv = layer.folded()
    assert isinstance(conv, torch.nn.Conv2d) and torch.allclose(conv(x), want, atol=1e-5)
    assert layer.edges == (("sobel_x", "sobel_y", "laplacian") if k >= 3 else ())


def test_a_new_ecb_network_computes_what_its_kxk_branches_compute():
    torch.manual_seed(0)
    ecb = ESPCN(3, reparam="ecb")
    plain = ESPCN(3)
    plain.load_state_dict(ecb.folded().state_dict())
    state = {k: v for k, v in ecb.state_dict().items() if k.endswith((".weight", ".bias"))}
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in state.items())  # zero-contribution branches
    x = torch.rand(1, 1, 20, 16)
    assert torch.equal(ecb(x), plain(x))


@pytest.mark.parametrize("scale,activation", [(2, "tanh"), (3, "relu"), (4, "prelu")])
def test_folding_keeps_the_function_and_gives_the_paper_network(scale, activation):
    torch.manual_seed(scale)
    ecb = _randomised(ESPCN(scale, activation=activation, reparam="ecb"))
    plain = ecb.folded()
    assert plain.reparam == "none" and not any(isinstance(m, RepConv2d) for m in plain.modules())
    assert count_parameters(plain) == count_parameters(ESPCN(scale, activation=activation))
    assert count_parameters(ecb) > 4 * count_parameters(plain)
    x = torch.rand(2, 1, 21, 18)
    assert torch.allclose(ecb(x), plain(x), atol=1e-5)
    assert torch.allclose(ecb.forward_valid(x), plain.forward_valid(x), atol=1e-5)


def test_every_branch_learns():
    torch.manual_seed(0)
    ecb = ESPCN(3, features=[8, 4], reparam="ecb")
    ecb(torch.rand(2, 1, 12, 12)).square().mean().backward()
    zero_grad = [n for n, p in ecb.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    # from zero contribution, the second factor of each branch gets a gradient at once; the first one next step
    assert all(n.endswith(("_w0", "es_b0")) for n in zero_grad), zero_grad
    assert any(n.endswith("es_w1") for n, p in ecb.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0)


def test_a_wrong_reparam_is_one_line_naming_the_key():
    with pytest.raises(ConfigError, match=r"model.reparam: must be one of \['none', 'ecb'\], got 'acnet'"):
        load_config(None, ["model.reparam=acnet"])


def test_a_model_file_is_always_the_folded_network(tmp_path):
    torch.manual_seed(1)
    cfg = load_config(None, ["model.reparam=ecb"])
    ecb = _randomised(ESPCN(3, reparam="ecb"))
    path = save_safetensors(ecb, cfg, DegradationSpec(), tmp_path / "m.safetensors")
    loaded = load_model(str(path))
    assert loaded.config.model.reparam == "none" and count_parameters(loaded.model) == 22_729
    x = torch.rand(1, 1, 15, 15)
    assert torch.allclose(loaded.model(x), ecb(x), atol=1e-5)


def test_a_channels_last_ecb_network_keeps_its_activations_channels_last_as_the_plain_one_does():
    """fit moves the network to channels-last; a kernel computed in NCHW strides made oneDNN convert the
    64-map activations every step (1.3-1.6x the plain step time before the kernel followed the layout)."""
    torch.manual_seed(0)
    x = torch.rand(4, 1, 17, 17).contiguous(memory_format=torch.channels_last)
    for reparam in ("none", "ecb"):
        net = _randomised(ESPCN(3, reparam=reparam)).to(memory_format=torch.channels_last)
        hidden = net.body[1](net.body[0](x))
        assert hidden.is_contiguous(memory_format=torch.channels_last) and hidden.stride(1) == 1, reparam
    assert torch.allclose(net(x), net.folded().to(memory_format=torch.channels_last)(x), atol=1e-4)
