"""Ensembles, the paper's future-work idea (Sec. 5): averaging independently trained networks, and the
geometric self-ensemble (one network over the 8 flips/90-degree rotations of its input, each output
mapped back). Both are plain ``nn.Module`` wrappers, so ``eval`` and anything that calls a model use
them unchanged; they cost N (models) or 8 (transforms) network passes per image.
"""

from __future__ import annotations

import torch

from espcn_lab.errors import UserError
from espcn_lab.imaging.dihedral import COUNT, dihedral, dihedral_inverse


class ModelEnsemble(torch.nn.Module):
    """Mean of the (unclamped) outputs of several networks of the same scale and channels."""

    def __init__(self, models: list[torch.nn.Module]):
        super().__init__()
        if not models:
            raise UserError("an ensemble needs at least one model")
        self.members = torch.nn.ModuleList(models)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.members[0](x)
        for model in self.members[1:]:
            out = out + model(x)
        return out / len(self.members)


class SelfEnsemble(torch.nn.Module):
    """Geometric self-ensemble: mean over the 8 dihedral transforms of the input, each output transformed back."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = None
        for t in range(COUNT):
            y = dihedral_inverse(self.model(dihedral(x, t)), t)
            out = y if out is None else out + y
        return out / COUNT


def combine(loaded, others: list, self_ensemble: bool = False) -> tuple[torch.nn.Module, str]:
    """The model of ``loaded`` averaged with ``others`` (LoadedModels), optionally self-ensembled; and a label."""
    model, label = loaded.model, ""
    for other in others:
        if other.config.model.scale != loaded.config.model.scale:
            raise UserError(f"--ensemble {other.source}: x{other.config.model.scale}, but the model is x{loaded.config.model.scale}")
        if other.config.model.channels != loaded.config.model.channels:
            raise UserError(f"--ensemble {other.source}: {other.config.model.channels} channels, "
                            f"but the model has {loaded.config.model.channels}")
        if other.degradation != loaded.degradation:
            raise UserError(f"--ensemble {other.source}: trained for {other.degradation.to_dict()}, "
                            f"the model for {loaded.degradation.to_dict()}")
    if others:
        model = ModelEnsemble([loaded.model] + [o.model for o in others])
        label += f" + ensemble of {len(others) + 1}"
    if self_ensemble:
        model = SelfEnsemble(model)
        label += " + self-ensemble x8"
    return model.eval(), label
