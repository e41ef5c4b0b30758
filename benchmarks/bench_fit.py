"""Lightning overhead: training patches/s of the `fit` stack vs a plain PyTorch loop, same shards/device.

Usage: python benchmarks/bench_fit.py [SHARDS] [--steps N] [--batch B] [--features 64,32]
Both sides use the same WebDataset stream (workers=0), model, Adam, MSE and uint8->float conversion
on the device; the Lightning side is ESPCNModule + ShardDataModule + the Trainer built by
``train.build_trainer`` (loggers, checkpoint/LR callbacks included). Goal: overhead <= 10%.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from espcn_lab.paths import shared_data

ROOT = Path(__file__).resolve().parents[1]


def plain_loop(cfg, urls, device, steps: int, warmup: int) -> float:
    from espcn_lab.model import build_model
    from espcn_lab.train.stream import train_loader, train_pipeline

    fmt = torch.channels_last if cfg.trainer.channels_last else torch.contiguous_format  # as ESPCNModule does
    model = build_model(cfg.model).to(device, memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.learning_rate)
    loader = iter(train_loader(train_pipeline(urls, cfg.data.batch_size, shuffle_buffer=cfg.data.shuffle_buffer), 0, 10**9))
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        lq, gt = (t.to(device).float().div_(255.0) for t in next(loader))
        lq = lq.contiguous(memory_format=fmt)
        loss = torch.nn.functional.mse_loss(model(lq), gt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * cfg.data.batch_size / (time.perf_counter() - start)


def lightning_fit(cfg, device, steps: int, warmup: int, run_dir: Path) -> float:
    import lightning as L

    from espcn_lab.train.datamodule import ShardDataModule
    from espcn_lab.train.fit import build_trainer
    from espcn_lab.train.module import ESPCNModule

    marks = {}

    class Clock(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            if trainer.global_step == warmup:
                marks["start"] = time.perf_counter()

        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == warmup + steps:  # before the epoch-end validation and checkpoint
                if device.type == "cuda":
                    torch.cuda.synchronize()
                marks["end"] = time.perf_counter()

    dm = ShardDataModule(cfg)
    trainer = build_trainer(cfg, run_dir)
    trainer.callbacks.append(Clock())
    trainer.fit(ESPCNModule(cfg, dm.degradation), datamodule=dm)
    return steps * cfg.data.batch_size / (marks["end"] - marks["start"])


def main() -> None:
    from data_prep import PrepOptions, run_prep
    from espcn_lab.config import load_config
    from espcn_lab.shards.locate import resolve_shards

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("shards", nargs="?")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--features", default="64,32")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    data = shared_data()
    shards = args.shards or run_prep(PrepOptions(out=tmp / "t91", scale=3, image_dir=data / "T91", images_per_shard=23,
                                                 progress=False)) and tmp / "t91"
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    warmup = 10
    cfg = load_config("configs/smoke.yaml", [
        f"data.train_shards={shards}", f"model.features=[{args.features}]", f"data.batch_size={args.batch}",
        "data.num_workers=0", "data.shuffle_buffer=20000", f"data.samples_per_epoch={(args.steps + warmup) * args.batch}",
        "trainer.max_epochs=1", f"trainer.accelerator={device.type}", "trainer.log_every_n_steps=50",
        f"data.val_dirs.Set5={data / 'Set5'}", "log.wandb_mode=disabled", f"run.dir={tmp}"])
    urls, _ = resolve_shards(str(shards))
    name = torch.cuda.get_device_name() if device.type == "cuda" else (platform.processor() or platform.machine())
    print(f"machine: {name}; torch {torch.__version__}; {torch.get_num_threads()} threads; batch {args.batch}; "
          f"features {args.features}; {args.steps} timed steps after {warmup}")
    plain = plain_loop(cfg, urls, device, args.steps, warmup)
    ours = lightning_fit(cfg, device, args.steps, warmup, tmp / "run")
    plain2 = plain_loop(cfg, urls, device, args.steps, warmup)  # bracket: the machine may drift
    base = (plain + plain2) / 2
    print(f"plain PyTorch loop: {plain:,.0f} / {plain2:,.0f} patches/s")
    print(f"espcn-lab fit:      {ours:,.0f} patches/s")
    print(f"fit / plain = {ours / base:.3f}  (Lightning overhead {100 * (1 - ours / base):+.1f}%; goal <= 10%)")


if __name__ == "__main__":
    main()
