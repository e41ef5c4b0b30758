import pytest
import torch

from espcn_lab.model import ACTIVATIONS, ESPCN, count_parameters, multiply_adds


@pytest.mark.parametrize("scale,params", [(2, 21_284), (3, 22_729), (4, 24_752)])
def test_paper_network_parameter_count(scale, params):
    assert count_parameters(ESPCN(scale=scale)) == params


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_output_shape_and_every_parameter_gets_a_gradient(activation):
    torch.manual_seed(0)
    model = ESPCN(scale=3, channels=3, features=[8, 4, 4], kernels=[5, 3, 3, 3], activation=activation)
    out = model(torch.rand(2, 3, 17, 11))
    assert out.shape == (2, 3, 51, 33)
    out.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_last_layer_is_subpixel_and_has_no_activation():
    model = ESPCN(scale=2)
    layers = model.conv_layers()
    assert [c.kernel_size[0] for c in layers] == [5, 3, 3]
    assert layers[-1].out_channels == 4
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.last.bias.fill_(-2.0)  # a tanh/relu after it would change this
    assert torch.allclose(model(torch.rand(1, 1, 4, 4)), torch.full((1, 1, 8, 8), -2.0))


def test_pixel_shuffle_places_channel_c_at_offset():
    model = ESPCN(scale=2, features=[1], kernels=[1, 1])
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.last.bias.copy_(torch.tensor([0.0, 1.0, 2.0, 3.0]))
    out = model(torch.zeros(1, 1, 1, 1))[0, 0]
    assert out.tolist() == [[0.0, 1.0], [2.0, 3.0]]  # channel r*dy + dx lands at (dy, dx)


def test_multiply_adds_of_paper_x3_at_1080p_output():
    # 640x360 LR -> 1920x1080; per LR pixel 1*64*25 + 64*32*9 + 32*9*9 = 22,624 MACs
    assert multiply_adds(ESPCN(scale=3), 360, 640) == 360 * 640 * 22_624


def test_bad_architecture_is_refused():
    with pytest.raises(ValueError, match="kernels"):
        ESPCN(features=[64, 32], kernels=[5, 3])
    with pytest.raises(ValueError, match="activation"):
        ESPCN(activation="sigmoidal")


@pytest.mark.parametrize("scale,kernels,features", [(3, [5, 3, 3], [64, 32]), (2, [3, 1, 5, 3], [8, 8, 4])])
def test_forward_valid_is_the_centre_that_padding_never_touches(scale, kernels, features):
    torch.manual_seed(0)
    model = ESPCN(scale=scale, features=features, kernels=kernels, activation="tanh")
    lq = torch.rand(2, 1, 17, 15)
    r = model.receptive_radius()
    assert r == sum(k // 2 for k in kernels)
    valid, full = model.forward_valid(lq), model(lq)
    assert valid.shape == (2, 1, (17 - 2 * r) * scale, (15 - 2 * r) * scale)
    assert torch.allclose(valid, full[..., r * scale:-r * scale, r * scale:-r * scale], atol=1e-6)
    # one pixel further out does see the padding
    ring = full[..., (r - 1) * scale:(r - 1) * scale + 1, r * scale:-r * scale]
    assert not torch.allclose(ring, model.forward_valid(torch.nn.functional.pad(lq, (0, 0, 1, 0), value=0.5))[..., :1, :])
