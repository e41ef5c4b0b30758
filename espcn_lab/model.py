"""ESPCN: the efficient sub-pixel convolutional network of Shi et al., CVPR 2016 (Sec. 2.2).

Every convolution runs in low-resolution space; the last layer emits ``channels * scale**2`` maps
that a periodic shuffle (``nn.PixelShuffle``, Eq. 4) rearranges into the high-resolution image.
This module owns the network: its layers, which architectures are valid (``check_architecture``, the
one place those rules live, used by the config loader and the constructor) and how a ``model.*``
config section becomes a network (``build_model``). It imports torch and ``espcn_lab.errors`` only.

Training-time re-parameterisation (``model.reparam: ecb``): each convolution trains as a sum of linear
branches in the manner of ECBSR (Zhang et al., ACM MM 2021): the k x k kernel, a 1x1 -> 3x3
expand-squeeze pair, and 1x1 convolutions followed by scaled Sobel-x, Sobel-y and Laplacian filters.
Every branch is linear, so their sum is one k x k convolution; ``RepConv2d`` computes that kernel on
each forward pass (so training sees exactly the network inference will run, borders included) and
``ESPCN.folded()`` returns the plain network, the only form that is saved as a model file or exported.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Sequence

import torch
from torch import nn

from espcn_lab.errors import ConfigError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "prelu": nn.PReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def check_architecture(m) -> None:
    """Refuse a ``model.*`` section (anything with scale, channels, features, kernels, activation) that
    no network can have; ConfigError naming the key."""
    if m.scale < 1:
        raise ConfigError(f"model.scale: must be >= 1, got {m.scale}")
    if m.channels not in (1, 3):
        raise ConfigError(f"model.channels: must be 1 (Y) or 3 (RGB), got {m.channels}")
    if len(m.kernels) != len(m.features) + 1:
        raise ConfigError(f"model.kernels: needs len(model.features)+1 = {len(m.features) + 1} entries, "
                          f"got {list(m.kernels)}")
    if any(k < 1 or k % 2 == 0 for k in m.kernels):
        raise ConfigError(f"model.kernels: entries must be positive odd numbers (padding keeps the size), "
                          f"got {list(m.kernels)}")
    if any(f < 1 for f in m.features):
        raise ConfigError(f"model.features: entries must be positive, got {list(m.features)}")
    if m.activation not in ACTIVATIONS:
        raise ConfigError(f"model.activation: must be one of {sorted(ACTIVATIONS)}, got {m.activation!r}")
    if getattr(m, "reparam", "none") not in REPARAMS:
        raise ConfigError(f"model.reparam: must be one of {list(REPARAMS)}, got {m.reparam!r}")


REPARAMS = ("none", "ecb")
_EDGE_MASKS = {  # ECBSR's fixed 3x3 filters, each scaled per output channel by a learned factor
    "sobel_x": [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]],
    "sobel_y": [[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]],
    "laplacian": [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]],
}


class RepConv2d(nn.Module):
    """A k x k convolution trained as ECB branches; ``kernel()`` is the one equivalent (weight, bias).

    ``weight``/``bias`` are the k x k branch under the names ``nn.Conv2d`` uses, so a plain network's
    state loads into it (``strict=False``); the other branches start at zero contribution (their second
    factor is zero), so a new RepConv2d computes exactly what its k x k branch computes.
    """

    def __init__(self, c_in: int, c_out: int, k: int, expand: int = 2) -> None:
        super().__init__()
        plain = nn.Conv2d(c_in, c_out, k, padding=k // 2)  # the same initial k x k branch as ESPCN's
        self.in_channels, self.out_channels, self.kernel_size = c_in, c_out, (k, k)
        self.weight, self.bias = plain.weight, plain.bias
        small, mid = min(3, k), expand * c_out
        # branch factors are kept below 4-D (1x1 kernels as matrices, the 3x3 one flattened) so that moving the
        # network to channels-last leaves them alone: 4-D factors in channels-last made every step copy them
        self.es_w0 = nn.Parameter(nn.Conv2d(c_in, mid, 1).weight.detach()[..., 0, 0].clone())
        self.es_b0 = nn.Parameter(torch.zeros(mid).uniform_(-c_in**-0.5, c_in**-0.5))
        self.es_w1 = nn.Parameter(torch.zeros(c_out, mid, small * small))
        # the edge branches' own biases would only add to ``bias`` (each mask sums to 0): left out, so the
        # layer's bias is one parameter, as in the plain network
        self.edges = tuple(_EDGE_MASKS) if k >= 3 else ()
        for name in self.edges:
            setattr(self, f"{name}_w0", nn.Parameter(nn.Conv2d(c_in, c_out, 1).weight.detach()[..., 0, 0].clone()))
            setattr(self, f"{name}_scale", nn.Parameter(torch.zeros(c_out)))
            self.register_buffer(f"{name}_mask", torch.tensor(_EDGE_MASKS[name]), persistent=False)

    def _pad(self, w: torch.Tensor) -> torch.Tensor:
        p = (self.kernel_size[0] - w.shape[-1]) // 2
        return nn.functional.pad(w, (p, p, p, p))

    def kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The (weight, bias) of the single convolution the branches sum to."""
        small = math.isqrt(self.es_w1.shape[-1])
        weight = self.weight + self._pad(torch.einsum("omt,mi->oit", self.es_w1, self.es_w0).unflatten(-1, (small, small)))
        bias = self.bias + torch.einsum("omt,m->o", self.es_w1, self.es_b0)
        for name in self.edges:
            w0 = getattr(self, f"{name}_w0")
            scale, mask = getattr(self, f"{name}_scale"), getattr(self, f"{name}_mask")
            weight = weight + self._pad((scale[:, None] * w0)[..., None, None] * mask)
        return weight, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.kernel()
        if self.weight.stride(1) == 1 < self.kernel_size[0] and x.is_contiguous(memory_format=torch.channels_last):
            # a network moved to channels-last (its k x k branch has channel stride 1): the kernel must be too,
            # strides included, or oneDNN converts the activations every step (``.contiguous()`` would keep a
            # 1-input-channel kernel's NCHW strides, which also count as channels-last)
            weight = torch.empty_like(weight, memory_format=torch.channels_last).copy_(weight)
        return nn.functional.conv2d(x, weight, bias, padding=self.kernel_size[0] // 2)

    def folded(self) -> nn.Conv2d:
        conv = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size[0], padding=self.kernel_size[0] // 2)
        with torch.no_grad():
            weight, bias = self.kernel()
            conv.weight.copy_(weight)
            conv.bias.copy_(bias)
        return conv


def conv_kernel(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of a convolution layer, plain or re-parameterised."""
    return layer.kernel() if isinstance(layer, RepConv2d) else (layer.weight, layer.bias)


class ESPCN(nn.Module):
    """Conv+activation hidden layers, then a conv to ``channels*scale^2`` maps and a pixel shuffle.

    ``features`` lists the hidden widths (paper: [64, 32]); ``kernels`` has one more entry than
    ``features``, its last being the sub-pixel layer's kernel (paper: [5, 3, 3]). Convolutions are
    zero-padded so the output is exactly ``scale`` times the input.
    """

    def __init__(
        self,
        scale: int = 3,
        channels: int = 1,
        features: Sequence[int] = (64, 32),
        kernels: Sequence[int] = (5, 3, 3),
        activation: str = "tanh",
        reparam: str = "none",
    ) -> None:
        super().__init__()
        check_architecture(_Architecture(scale, channels, list(features), list(kernels), activation, reparam))
        self.scale, self.channels, self.reparam, self.activation_name = int(scale), int(channels), reparam, activation
        conv = RepConv2d if reparam == "ecb" else (lambda c_in, c_out, k: nn.Conv2d(c_in, c_out, k, padding=k // 2))
        widths = [channels, *features]
        layers: list[nn.Module] = []
        for c_in, c_out, k in zip(widths[:-1], widths[1:], kernels[:-1]):
            layers += [conv(c_in, c_out, k), ACTIVATIONS[activation]()]
        self.body = nn.Sequential(*layers)
        self.last = conv(widths[-1], channels * scale**2, kernels[-1])
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, lq: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, C, H*scale, W*scale), unclamped."""
        return self.shuffle(self.last(self.body(lq)))

    def conv_layers(self) -> list[nn.Conv2d]:
        """Convolutions in order (plain or re-parameterised); the last one is the sub-pixel layer."""
        return [m for m in self.body if isinstance(m, (nn.Conv2d, RepConv2d))] + [self.last]

    def folded(self) -> ESPCN:
        """The plain network this one computes (itself when it has no re-parameterised layers)."""
        if self.reparam == "none":
            return self
        widths = [self.channels] + [c.out_channels for c in self.conv_layers()[:-1]]
        plain = ESPCN(self.scale, self.channels, widths[1:], [c.kernel_size[0] for c in self.conv_layers()],
                      self.activation_name)
        plain.body = nn.Sequential(*[m.folded() if isinstance(m, RepConv2d) else m for m in self.body])
        plain.last = self.last.folded()
        return plain.to(self.last.weight.device).train(self.training)

    def receptive_radius(self) -> int:
        """LR pixels of context each output pixel sees on one side: sum of k // 2 over the convolutions."""
        return sum(conv.kernel_size[0] // 2 for conv in self.conv_layers())

    def forward_valid(self, lq: torch.Tensor) -> torch.Tensor:
        """The network without zero padding: (B, C, h, w) -> (B, C, (h - 2R) * s, (w - 2R) * s), R the radius.

        Exactly the centre of ``forward(lq)`` whose receptive fields lie inside the input (the part zero
        padding never touches, as at test time away from the image border), for fewer multiply-adds.
        """
        x = lq
        for layer in self.body:
            x = nn.functional.conv2d(x, *conv_kernel(layer)) if isinstance(layer, (nn.Conv2d, RepConv2d)) else layer(x)
        return self.shuffle(nn.functional.conv2d(x, *conv_kernel(self.last)))


class _Architecture(typing.NamedTuple):
    scale: int
    channels: int
    features: list
    kernels: list
    activation: str
    reparam: str


def build_model(m) -> ESPCN:
    """The network of a ``model.*`` config section (``Config.model``), as it trains (``model.reparam``)."""
    return ESPCN(scale=m.scale, channels=m.channels, features=m.features, kernels=m.kernels, activation=m.activation,
                 reparam=m.reparam)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def multiply_adds(model: ESPCN, lq_height: int, lq_width: int) -> int:
    """Multiply-accumulates of one forward pass on an (lq_height, lq_width) input (convolutions only)."""
    pixels = lq_height * lq_width
    return sum(pixels * conv.in_channels * conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
               for conv in model.conv_layers())
