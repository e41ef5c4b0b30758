"""The teacher of ``optim.distill_from``: frozen model(s) whose output on each training LR patch is a second target.

The loss becomes ``(1 - w) * MSE(student, HR) + w * MSE(student, teacher(LR))`` with ``w = optim.distill_weight``.
A teacher is any model file of the run's scale and channels, of any width or depth (an LR-space network is as
cheap to run on a patch as the student), trained for the same degradation as the shards; several are averaged
(an ensemble), and ``optim.distill_self_ensemble`` averages each over its 8 flips/rotations. The teacher is not
part of the module's weights: checkpoints and model files hold the student alone, and a resumed run loads the
teacher again from the same files.
"""

from __future__ import annotations

import torch

from espcn_lab.checkpoint import load_model
from espcn_lab.config import Config
from espcn_lab.errors import UserError
from espcn_lab.evaluate.ensemble import combine
from espcn_lab.imaging.degrade import DegradationSpec


def teacher_specs(cfg: Config) -> list[str]:
    """The model specs of ``optim.distill_from`` (a string or a list; empty entries dropped)."""
    value = cfg.optim.distill_from
    return [s for s in ([value] if isinstance(value, str) else list(value)) if str(s).strip()]


def load_teacher(cfg: Config, degradation: DegradationSpec) -> torch.nn.Module | None:
    """The frozen teacher (eval mode, no gradients) for a run whose shards were made by ``degradation``, or None
    when the config names none; UserError naming the file and what does not match."""
    specs = teacher_specs(cfg)
    if not specs:
        if cfg.optim.distill_self_ensemble:
            raise UserError("optim.distill_self_ensemble: needs a teacher in optim.distill_from")
        return None
    loaded = []
    for spec in specs:
        try:
            teacher = load_model(spec)
        except UserError as err:
            raise UserError(f"optim.distill_from: {err}") from None
        m = teacher.config.model
        if (m.scale, m.channels) != (cfg.model.scale, cfg.model.channels):
            raise UserError(f"optim.distill_from: {spec} is x{m.scale} with {m.channels} channel(s), the run trains "
                            f"x{cfg.model.scale} with {cfg.model.channels}")
        if teacher.degradation != degradation:
            raise UserError(f"optim.distill_from: {spec} was trained for {teacher.degradation.to_dict()}, the shards "
                            f"hold {degradation.to_dict()}")
        loaded.append(teacher)
    model, _ = combine(loaded[0], loaded[1:], cfg.optim.distill_self_ensemble)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()
