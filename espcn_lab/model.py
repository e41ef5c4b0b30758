"""ESPCN: the efficient sub-pixel convolutional network of Shi et al., CVPR 2016 (Sec. 2.2).

Every convolution runs in low-resolution space; the last layer emits ``channels * scale**2`` maps
that a periodic shuffle (``nn.PixelShuffle``, Eq. 4) rearranges into the high-resolution image.
This module owns the network: its layers, which architectures are valid (``check_architecture``, the
one place those rules live, used by the config loader and the constructor) and how a ``model.*``
config section becomes a network (``build_model``). It imports torch and ``espcn_lab.errors`` only.
"""

from __future__ import annotations

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
    ) -> None:
        super().__init__()
        check_architecture(_Architecture(scale, channels, list(features), list(kernels), activation))
        self.scale, self.channels = int(scale), int(channels)
        widths = [channels, *features]
        layers: list[nn.Module] = []
        for c_in, c_out, k in zip(widths[:-1], widths[1:], kernels[:-1]):
            layers += [nn.Conv2d(c_in, c_out, k, padding=k // 2), ACTIVATIONS[activation]()]
        self.body = nn.Sequential(*layers)
        self.last = nn.Conv2d(widths[-1], channels * scale**2, kernels[-1], padding=kernels[-1] // 2)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, lq: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, C, H*scale, W*scale), unclamped."""
        return self.shuffle(self.last(self.body(lq)))

    def conv_layers(self) -> list[nn.Conv2d]:
        """Convolutions in order; the last one is the sub-pixel layer."""
        return [m for m in self.body if isinstance(m, nn.Conv2d)] + [self.last]

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
            x = nn.functional.conv2d(x, layer.weight, layer.bias) if isinstance(layer, nn.Conv2d) else layer(x)
        return self.shuffle(nn.functional.conv2d(x, self.last.weight, self.last.bias))


class _Architecture(typing.NamedTuple):
    scale: int
    channels: int
    features: list
    kernels: list
    activation: str


def build_model(m) -> ESPCN:
    """The network of a ``model.*`` config section (``Config.model``)."""
    return ESPCN(scale=m.scale, channels=m.channels, features=m.features, kernels=m.kernels, activation=m.activation)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def multiply_adds(model: ESPCN, lq_height: int, lq_width: int) -> int:
    """Multiply-accumulates of one forward pass on an (lq_height, lq_width) input (convolutions only)."""
    pixels = lq_height * lq_width
    return sum(pixels * conv.in_channels * conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
               for conv in model.conv_layers())
