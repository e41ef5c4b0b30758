"""The teacher of ``optim.distill_from``: frozen model(s) whose output on each training LR patch is a second target.

The loss becomes ``(1 - w) * MSE(student, HR) + w * MSE(student, teacher(LR))`` with ``w = optim.distill_weight``.
A teacher is any model file of the run's scale and channels, of any width or depth (an LR-space network is as
cheap to run on a patch as the student), trained for the same degradation as the shards; several are averaged
(an ensemble), and ``optim.distill_self_ensemble`` averages each over its 8 flips/rotations. The teacher is not
part of the module's weights: checkpoints and model files hold the student alone, and a resumed run loads the
teacher again from the same files.

The teacher runs on each training patch as the shards store it, before the flips/rotations of ``data.augment``,
which then move its output with the LR and HR patches. For a self-ensembled teacher (equivariant to those 8
transforms) that is exactly the teacher run on the flipped patch. On a CPU its outputs are remembered per stored
patch (``TeacherTargets``): the shards hold tens of thousands of pairs and an epoch shows each one several times,
so after the first pass the teacher costs a lookup, not 8 network passes.
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


CACHE_BYTES = 2 << 30  # remembered teacher outputs at most (float32): ~200k x3 patches of 51 x 51


class TeacherTargets:
    """The teacher's output for uint8 LR batches (B, C, h, w) as float (B, C, h*s, w*s), remembered per patch on a
    CPU up to ``cache_bytes`` (later patches are computed each time); on another device always computed."""

    def __init__(self, teacher: torch.nn.Module, cache_bytes: int = CACHE_BYTES):
        self.teacher, self.cache_bytes = teacher, cache_bytes
        self.memory: dict[bytes, torch.Tensor] = {}
        self.stored = self.hits = self.misses = 0

    def _run(self, lq: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.teacher(lq.float().div_(255.0))

    def __call__(self, lq: torch.Tensor) -> torch.Tensor:
        if lq.device.type != "cpu" or self.cache_bytes <= 0:
            return self._run(lq)
        keys = [row.tobytes() for row in lq.numpy().reshape(len(lq), -1)]
        new = [i for i, k in enumerate(keys) if k not in self.memory]
        self.hits, self.misses = self.hits + len(keys) - len(new), self.misses + len(new)
        fresh = dict(zip(new, self._run(lq[new]))) if new else {}
        for i, out in fresh.items():
            if self.stored + out.numel() * 4 <= self.cache_bytes:
                self.memory[keys[i]] = out.clone()  # its own storage, not a view that keeps the batch alive
                self.stored += out.numel() * 4
        return torch.stack([fresh[i] if i in fresh else self.memory[k] for i, k in enumerate(keys)])
