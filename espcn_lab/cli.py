"""The ``espcn-lab`` command line: thin Typer commands over library functions.

Each command parses its options, calls one library function and prints the result. Heavy imports
happen inside the commands so ``--help`` stays instant. ``main`` is the one place where errors
caused by the user's input become a single readable line and a non-zero exit code.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from espcn_lab.paths import peer_models as default_peer_models
from espcn_lab.quickstart import DEFAULT_STEPS

app = typer.Typer(
    name="espcn-lab",
    help="Train, evaluate and deploy ESPCN super-resolution networks (Shi et al., CVPR 2016).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


# ---------------------------------------------------------------- prep (issue 2)
@app.command()
def prep(
    out: Annotated[Path, typer.Option(help="Output folder for {split}-%06d.tar shards and manifest.json.")],
    scale: Annotated[int, typer.Option(help="Upscaling factor r (2-8).")] = 3,
    imagenet_dir: Annotated[Optional[Path], typer.Option(
        help="ILSVRC tree: train/<wnid>/*.JPEG, or the folder holding the class folders.")] = None,
    image_dir: Annotated[Optional[Path], typer.Option(help="Any folder tree of jpg/png/bmp/webp/tiff images.")] = None,
    hf_dataset: Annotated[Optional[str], typer.Option(
        help="Hugging Face dataset name or local path (no network needed for local or cached sets).")] = None,
    hf_split: Annotated[str, typer.Option(help="Split of --hf-dataset.")] = "train",
    hf_image_column: Annotated[str, typer.Option(help="Image column of --hf-dataset.")] = "image",
    hf_streaming: Annotated[bool, typer.Option(
        help="Stream --hf-dataset row by row (large sets); gives the same shards as without.")] = False,
    num_images: Annotated[Optional[int], typer.Option(
        help="Training images to use [default: 50,000 for ImageNet (the paper), all for folders and HF].")] = None,
    val_images: Annotated[int, typer.Option(help="Further images held out as the 'val' split.")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the selection from the sorted listing.")] = 0,
    channels: Annotated[str, typer.Option(help="y (BT.601 luma, as MATLAB rgb2ycbcr; the paper) or rgb.")] = "y",
    lq_patch: Annotated[int, typer.Option(help="LR patch size; HR patches are lq-patch * scale.")] = 17,
    stride: Annotated[Optional[int], typer.Option(
        help="LR stride [default: the paper's lq-patch - sum(k % 2) for kernels 5-3-3, i.e. 14].")] = None,
    degradation: Annotated[str, typer.Option(
        help="bicubic (MATLAB imresize, the protocol of every published table) or gaussian "
             "(the paper: Gaussian blur then subsample).")] = "bicubic",
    sigma: Annotated[Optional[float], typer.Option(
        help="Gaussian std in HR pixels [default: max(0.5, (scale - 1) / 2)].")] = None,
    hr_scales: Annotated[Optional[str], typer.Option(
        help="Use each image at these sizes (comma-separated factors in (0, 1], MATLAB bicubic), e.g. "
             "1,0.9,0.8,0.7,0.6 (FSRCNN's scale augmentation) or 0.5 (JPEG sources: shrinks their "
             "compression noise so it does not become the target) [default: as it is].")] = None,
    grey: Annotated[str, typer.Option(
        help="How a greyscale source becomes Y: values (its grey values are its luma, 0-255, as eval scores a "
             "greyscale image) or bt601 (as RGB with R=G=B: luma 16-235, prep before 0.2).")] = "values",
    images_per_shard: Annotated[int, typer.Option(
        help="Source images per shard (the shard size; ~250 KB per ImageNet image at x3).")] = 500,
    max_pixels: Annotated[int, typer.Option(help="Refuse larger images as decompression bombs.")] = 89_478_485,
    workers: Annotated[Optional[int], typer.Option(help="Worker processes [default: all cores].")] = None,
    part: Annotated[str, typer.Option(
        help="Build only shards g with g % N == i (global shard order, train then val), e.g. 0/4. "
             "Run every part with the same arguments into one folder (shared disk) or copy the parts' "
             "shards and .prep/ folders into one; the run that finds all shards done writes "
             "manifest.json (rerunning without --part there does it, and builds anything missing).")] = "0/1",
    overwrite: Annotated[bool, typer.Option(help="Replace shards in --out made with other arguments.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar (images/s, pairs, ETA).")] = True,
) -> None:
    """Build WebDataset shards of LR/HR patch pairs from ImageNet, an image folder or a HF dataset.

    Every selected image is modcropped, converted (Y or RGB), degraded once and cut into aligned
    17x17 / 17r x 17r pairs on a stride grid; one sample holds all pairs of one image. Unusable files
    are skipped and counted; alpha is composited on white. Rerunning the same command resumes.
    """
    from data_prep import PrepOptions, run_prep

    result = run_prep(PrepOptions(
        out=out, scale=scale, imagenet_dir=imagenet_dir, image_dir=image_dir, hf_dataset=hf_dataset,
        hf_split=hf_split, hf_image_column=hf_image_column, hf_streaming=hf_streaming, num_images=num_images,
        val_images=val_images, seed=seed, channels=channels, lq_patch=lq_patch, stride=stride,
        degradation=degradation, sigma=sigma, hr_scales=_factors(hr_scales), grey=grey, images_per_shard=images_per_shard, max_pixels=max_pixels,
        workers=workers, part=part, overwrite=overwrite, progress=progress))
    rate = result["images"] / result["seconds"] if result["seconds"] > 0 else 0.0
    print(f"built {result['shards_built']} shards ({result['shards_reused']} already done): {result['images']} images "
          f"({result['skipped']} skipped), {result['pairs']} pairs, {rate:.1f} images/s on {result['workers']} workers")
    if not result["complete"]:
        print(f"part done; {result['shards_missing']} shards of other parts missing")
    print(f"manifest: {result['manifest']}")


def _factors(text: Optional[str]) -> Optional[tuple[float, ...]]:
    """'1,0.9,0.8' -> (1.0, 0.9, 0.8); None stays None."""
    if text is None:
        return None
    from espcn_lab.errors import UserError

    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--hr-scales expects comma-separated numbers such as 1,0.9,0.8, got {text!r}") from None


# ---------------------------------------------------------------- fit / eval (issue 3)
def _config_keys() -> str:
    """Every config key, section by section, read from the schema (the end of ``fit --help``)."""
    from espcn_lab.config import flat_keys

    sections: dict[str, list[str]] = {}
    for key in flat_keys():
        sections.setdefault(key.split(".")[0], []).append(key.split(".", 1)[1])
    return "Config keys (configs/*.yaml, espcn_lab/config/schema.py):\n\n" + "\n\n".join(
        f"{section}.  {' '.join(names)}" for section, names in sections.items())


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, epilog=_config_keys())
def fit(
    config: Annotated[Path, typer.Argument(help="Experiment YAML, e.g. configs/x3_tanh.yaml.")],
    overrides: Annotated[Optional[list[str]], typer.Argument(
        help="Dotted KEY=VALUE overrides, e.g. optim.learning_rate=0.003 trainer.devices=2.")] = None,
) -> None:
    """Train ESPCN from a YAML config with dotted KEY=VALUE overrides; prints the run folder last."""
    from espcn_lab.config import load_config
    from espcn_lab.train.fit import fit as fit_run

    summary = fit_run(load_config(config, overrides or []))
    shown = {k: v for k, v in summary.items() if k in ("status", "epochs", "steps", "val/psnr_y", "val/ssim_y")}
    line = " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())
    if summary.get("global_rank", 0) == 0:  # under DDP every rank runs this command; rank 0 prints the result
        print(f"{line}\nrun: {summary['run_dir']}")
    else:  # the others say how they ended, on stderr
        print(f"espcn-lab: rank {summary['global_rank']}: {line}", file=sys.stderr)


@app.command(name="eval")
def evaluate(
    model: Annotated[str, typer.Argument(help="x2|x3|x4 (shipped), a .safetensors file or a Lightning .ckpt.")],
    data: Annotated[list[str], typer.Option("--data", help="NAME=DIR of HR images; repeat for several sets.")],
    scale: Annotated[Optional[int], typer.Option(help="Expected scale; an error if the model differs.")] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Also write all figures (per image too) here.")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, ... (default: cuda when available).")] = "auto",
    ensemble: Annotated[Optional[list[str]], typer.Option(
        "--ensemble", help="Another model (same scale) whose output is averaged with MODEL's; repeat for more.")] = None,
    self_ensemble: Annotated[bool, typer.Option(
        "--self-ensemble", help="Average the model over the 8 flips/rotations of each input (8x the compute).")] = False,
) -> None:
    """Score a model on folders of HR images (PSNR-Y / SSIM-Y against bicubic, paired t-test).

    Ensembles (the paper's future work) are scored with --ensemble MODEL (independently trained models
    averaged) and --self-ensemble (geometric, test-time); `python benchmarks/bench_ensemble.py` times them.
    """
    from espcn_lab.evaluate.run import evaluate as run_eval
    from espcn_lab.evaluate.run import format_table, parse_datasets, write_json

    results = run_eval(model, parse_datasets(data), scale=scale, device=device, ensemble=ensemble,
                       self_ensemble=self_ensemble)
    print(format_table(results))
    if json_path is not None:
        write_json(results, json_path)
        print(f"json: {json_path}")


# ---------------------------------------------------------------- upscale / bench / export (issue 5)
_MODEL_HELP = "x2, x3, x4 (shipped weights), a .safetensors file or a Lightning .ckpt."
_DEVICE_HELP = "auto (cuda, else mps, else cpu), cpu, cuda, cuda:N or mps."
_PRECISION_HELP = "auto (fp16 on CUDA, fp32 elsewhere), fp32, fp16 or bf16."
_BACKEND_HELP = ("auto (onnxruntime on CPU, torch elsewhere: the fastest that keeps fp32 quality), torch, onnxruntime, "
                 "triton (fused kernel, CUDA only, pip install 'espcn-lab[triton]').")


def _upscaler(model: str, device: str, precision: str, backend: str, tile: int = 1024, compile: bool = False):
    from espcn_lab.checkpoint import load_model
    from espcn_lab.deploy.infer import Upscaler

    loaded = load_model(model)
    return loaded, Upscaler(loaded.model, device=device, precision=precision, backend=backend, tile=tile,
                            compile=compile)


@app.command()
def upscale(
    model: Annotated[str, typer.Argument(help=_MODEL_HELP)],
    inputs: Annotated[list[Path], typer.Argument(
        help="Images (any Pillow format), folders of images/frames, or videos (mp4, mkv, mov, y4m, ...).")],
    output: Annotated[Optional[str], typer.Option(
        "--output", "-o", help="Output file (one input) or folder (keeps input names; an existing folder, a trailing "
                               "slash or a name without extension) [default: NAME_xS.EXT beside each input]. "
                               "Never one of the inputs; written atomically.")] = None,
    device: Annotated[str, typer.Option(help=_DEVICE_HELP)] = "auto",
    precision: Annotated[str, typer.Option(help=_PRECISION_HELP)] = "auto",
    backend: Annotated[str, typer.Option(help=_BACKEND_HELP)] = "auto",
    tile: Annotated[int, typer.Option(
        help="Largest LR tile side; bigger images run in overlapping tiles with identical output (0: never tile).")] = 1024,
    batch: Annotated[int, typer.Option(help="Video frames per model call.", min=1)] = 4,
    codec: Annotated[str, typer.Option(help="Video codec: auto (libx264; rawvideo for .y4m) or any PyAV encoder name.")] = "auto",
    crf: Annotated[int, typer.Option(help="Video quality for x264/x265/vp9 (lower is better; 18 is visually lossless).")] = 18,
    preset: Annotated[Optional[str], typer.Option(
        help="x264/x265 speed preset (ultrafast .. veryslow) [default: the encoder's, medium]; on CPU the encoder, not the model, caps video fps.")] = None,
    compile: Annotated[bool, typer.Option(help="torch.compile the network (torch backend).")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars (frames/s for videos).")] = True,
    max_pixels: Annotated[int, typer.Option(help="Refuse larger images (decompression bombs).")] = 89_478_485,
) -> None:
    """Super-resolve images, folders or videos: Y through the network, colour and alpha by bicubic.

    A file that fails is reported on one line and the others are still processed; the exit code is 1
    if any failed.
    """
    from espcn_lab.deploy.upscale import upscale_files

    _, upscaler = _upscaler(model, device, precision, backend, tile, compile)
    report = upscale_files(upscaler, inputs, output, batch=batch, codec=codec, crf=crf, progress=progress,
                           on_error=lambda msg: print(f"espcn-lab: error: {msg}", file=sys.stderr),
                           max_pixels=max_pixels, preset=preset)
    for _, dst in report.written:
        print(dst)
    print(f"upscaled {len(report.written)} file(s) x{upscaler.scale} with {upscaler.describe()}"
          + (f"; {len(report.incomplete)} incomplete (damaged input)" if report.incomplete else "")
          + (f"; {len(report.failed)} failed" if report.failed else ""), file=sys.stderr)
    if report.failed or report.incomplete:
        raise typer.Exit(1)


@app.command()
def bench(
    model: Annotated[str, typer.Argument(help=_MODEL_HELP)],
    device: Annotated[str, typer.Option(help=_DEVICE_HELP)] = "auto",
    precision: Annotated[str, typer.Option(help=_PRECISION_HELP)] = "auto",
    backend: Annotated[str, typer.Option(help=_BACKEND_HELP)] = "auto",
    resolution: Annotated[list[str], typer.Option(
        help="Output resolution(s): 720p, 1080p, 4k (repeat the option for several).")] = ["1080p"],
    runs: Annotated[int, typer.Option(help="Timed calls per figure (median reported).", min=1)] = 20,
    warmup: Annotated[int, typer.Option(help="Untimed calls first.", min=0)] = 3,
    budget: Annotated[float, typer.Option(help="Stop timing a figure after this many seconds (at least 3 calls).")] = 10.0,
    baselines: Annotated[bool, typer.Option(help="Also time bicubic, SRCNN 9-5-5, deconvolution, stock PyTorch, OpenCV.")] = True,
    peer_models: Annotated[Path, typer.Option(
        help="Folder with OpenCV dnn_superres ESPCN_x{2,3,4}.pb (directly or under ESPCN/).")] = default_peer_models(),
    pipeline: Annotated[bool, typer.Option(
        help="Also time end-to-end video: decode + model + encode against decode + bicubic + encode.")] = False,
    video: Annotated[Optional[Path], typer.Option(help="Clip for --pipeline [default: a synthetic LR clip].")] = None,
    preset: Annotated[Optional[str], typer.Option(help="x264 preset for --pipeline [default: the encoder's, medium].")] = None,
    codec: Annotated[str, typer.Option(help="Encoder for --pipeline: auto (libx264), rawvideo (a .y4m: no encoding cost), ffv1, ...")] = "auto",
    frames: Annotated[int, typer.Option(
        help="Frames of the synthetic --pipeline clip (each run opens and closes a video: more frames, less of that).",
        min=4)] = 48,  # = bench_video.PIPELINE_FRAMES (not imported here: the CLI loads torch only when a command runs)
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the full report as JSON here.")] = None,
) -> None:
    """Measure ms per frame and frames/s at output resolution, with baselines timed in the same run."""
    import json

    from espcn_lab.deploy.bench import RESOLUTIONS, run_bench
    from espcn_lab.errors import UserError

    bad = [r for r in resolution if r not in RESOLUTIONS]
    if bad:
        raise UserError(f"unknown resolution {bad[0]!r}; choose from {', '.join(RESOLUTIONS)}")
    loaded, upscaler = _upscaler(model, device, precision, backend)
    report = run_bench(upscaler, loaded.model, resolution, runs, warmup, budget, baselines,
                       peer_models, pipeline, video, preset, codec, frames)
    _print_bench(report)
    if json_path:
        from espcn_lab.files import write_bytes_atomic

        write_bytes_atomic(json_path, json.dumps(report, indent=1).encode())
        print(f"wrote {json_path}")


def _print_bench(report: dict) -> None:
    m = report["machine"]
    print(f"x{report['scale']} {report['backend']} {report['precision']} on {m.get('gpu', m['cpu'])} "
          f"({m['threads']} threads, torch {m['torch']})")
    for res, r in report["by_resolution"].items():
        print(f"{res} ({r['input']} -> {r['output']}): model {r['ms_per_frame']:.3f} ms/frame "
              f"({r['fps']:.1f} fps); full RGB frame {r['frame_ms']:.3f} ms ({r['frame_over_network']:.2f}x the model"
              + (f"; model without shuffle {r['network_phases_ms']:.3f} ms" if "network_phases_ms" in r else "") + ")")
        for name, b in r.get("baselines", {}).items():
            figure = f"{b['ms_per_frame']:10.3f} ms  {b['fps']:9.1f} fps" if "ms_per_frame" in b else f"skipped: {b['skipped']}"
            print(f"  {name:30s} {figure}")
        if r.get("ratios"):
            print("  ratios: " + ", ".join(f"{k} {v}" for k, v in r["ratios"].items()))
        if r.get("pipeline"):
            p = r["pipeline"]
            print(f"  video pipeline {p['pipeline_fps']} fps vs decode+bicubic+encode {p['decode_bicubic_encode_fps']} fps "
                  f"({p['pipeline_over_floor']:.0%}, {p['frames']} frames, {p['codec']} preset {p['preset']}); "
                  f"decode+encode alone {p['decode_encode_fps']} fps")
            if "network_fps" in p:
                print(f"  pipeline/network {p['pipeline_over_network']:.2f}; codec-bound ceiling {p['codec_bound_fps']} fps "
                      f"(pipeline at {p['pipeline_over_codec_bound']:.0%} of it, cores {p['pipeline_run']['core_use']:.0%} busy)")
            if "pipeline_yuv_over_network" in p:
                print(f"  YUV path {p['pipeline_yuv_fps']} fps = {p['pipeline_yuv_over_network']:.2f} of the network "
                      f"({p['yuv_over_rgb']:.2f}x the RGB path, {p['pipeline_yuv_over_network_interleaved']:.2f} of the "
                      f"network timed between the runs; codec-bound ceiling {p['codec_bound_fps_yuv']} fps, "
                      f"cores {p['pipeline_yuv_run']['core_use']:.0%} busy)")


@app.command()
def export(
    model: Annotated[str, typer.Argument(help=_MODEL_HELP)],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write, e.g. espcn_x3.onnx.")],
    format: Annotated[str, typer.Option("--format", help="onnx (dynamic batch, height, width), safetensors (weights + config, as the shipped models) or glsl (an mpv / libplacebo user shader on the luma plane, e.g. mpv --glsl-shaders=espcn_x3.glsl; Y-only models; see docs/glsl.md).")] = "onnx",
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 17,
    check: Annotated[bool, typer.Option(help="Compare the exported model against PyTorch (onnx, safetensors).")] = True,
) -> None:
    """Export a model for deployment (ONNX, safetensors, or an mpv GLSL shader); ONNX and safetensors are checked against PyTorch."""
    from espcn_lab.checkpoint import load_model
    from espcn_lab.deploy.export import export_model

    result = export_model(load_model(model), output, format, opset, check)
    detail = f", opset {result['opset']}" if "opset" in result else f", {result['passes']} passes" if "passes" in result else ""
    line = f"wrote {result['path']} ({result['bytes']:,} bytes{detail})"
    if "parity" in result:
        p = result["parity"]
        line += f"; parity vs PyTorch: max |diff| {p['max_abs_diff_255']:.2e} (0-255), PSNR {p['psnr_db']:.1f} dB"
    print(line)


@app.command()
def refit(
    model: Annotated[str, typer.Argument(help=_MODEL_HELP)],
    output: Annotated[Path, typer.Option("--output", "-o", help="The refitted model, a .safetensors file (eval, upscale, bench, export take it).")],
    image_dir: Annotated[Optional[list[str]], typer.Option("--image-dir", help="Folder of the training images, used whole (recommended: no patch borders), or a prep shard folder (its train split's source images, whole); repeat for several.")] = None,
    shards: Annotated[Optional[list[str]], typer.Option("--shards", help="Training shards (folder, glob or brace pattern) when the images are not at hand; repeat for several.")] = None,
    augment: Annotated[Optional[bool], typer.Option("--augment/--no-augment", help="Add the 8 flips/rotations of every pair (default: as the model was trained).")] = None,
    max_pairs: Annotated[Optional[int], typer.Option(help="Read at most this many pairs (default: all).")] = None,
) -> None:
    """Refit the last (sub-pixel) layer in closed form: the exact least-squares optimum on the training data.

    The hidden layers stay as trained; the last layer, which SGD only approaches (it learns 10x slower),
    becomes the minimiser of the training MSE given them. One pass over the data, no hyperparameters.
    Give the images the model was trained on (whole images, degraded as in training) or its shards.

    Example: espcn-lab refit runs/x3_t91_tanh/long/last.ckpt --image-dir ../shared/data/T91 -o x3.safetensors
    """
    from espcn_lab.train.refit import refit_model

    r = refit_model(model, shards or [], str(output), image_dirs=image_dir or [], augment=augment, max_pairs=max_pairs)
    skipped = (f" ({r['skipped']} unreadable or too small image(s) skipped, e.g. {r['skipped_files'][0]})"
               if r["skipped"] else "")
    print(f"refitted on {r['pairs']:,} pairs x {r['views']} views{skipped}: training PSNR "
          f"{r['train_psnr_before']:.3f} -> {r['train_psnr_after']:.3f} dB; wrote {r['path']}")


# ---------------------------------------------------------------- sweep (issue 6)
@app.command()
def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="W&B sweep YAML (e.g. sweeps/activations.yaml); the same file `wandb sweep` takes.")],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="KEY=VALUE config overrides applied to every trial, e.g. trainer.max_epochs=50.")] = None,
    count: Annotated[Optional[int], typer.Option("--count", "-n", help="Trials in the sweep (finished ones in --out count); grid default: every point. Needed for random/bayes unless the file sets run_cap.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for trials/, results.csv and pareto.png; re-running into it skips finished trials.")] = Path("sweeps_out"),
    check: Annotated[bool, typer.Option("--check", help="Only validate the file: parameters are config keys, every value and combination builds a config, the command is runnable.")] = False,
    gpus: Annotated[Optional[str], typer.Option("--gpus", help="Comma-separated GPU ids, e.g. 0,1: one trial per GPU in parallel (CUDA_VISIBLE_DEVICES). Default: one trial at a time.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random/bayes sampler (same seed, same proposals).")] = 0,
) -> None:
    """Run a W&B-format sweep file locally, without a W&B server (each trial is a real `espcn-lab fit`)."""
    from espcn_lab.sweep.run import run_sweep

    gpu_list = [g.strip() for g in gpus.split(",") if g.strip()] if gpus else None
    result = run_sweep(sweep_file, out, overrides or [], count=count, gpus=gpu_list, seed=seed, check_only=check)
    if check:
        typer.echo(f"ok: {result['sweep']} ({result['method']}, parameters {', '.join(result['parameters'])}; "
                   f"{result['checked_configs']} trial configs of {result['config']} validated)")
        return
    best, metric = result["best"], result["metric"]
    if best is not None:
        shown = " ".join(f"{k}={v}" for k, v in sorted(best["flat"].items()))
        typer.echo(f"best: {best['id']} {metric}={best['summary'][metric]:.4f} {shown}")
    typer.echo(f"trials: ran {result['ran']} ({result['failed']} failed), "
               f"{result['finished_total']}/{result['trials_total']} finished in {result['out']}")
    typer.echo(f"results: {result['results']}\npareto: {result['pareto']}")
    if result["failed"]:
        typer.echo(f"espcn-lab: {result['failed']} trial(s) failed; see the error column of {result['results']}", err=True)
        raise typer.Exit(1)


# ---------------------------------------------------------------- figures (issue 4)
@app.command()
def figures(
    model: Annotated[str, typer.Argument(help="x2, x3, x4, or a .ckpt/.safetensors file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the PNGs.")] = Path("figures"),
    set14: Annotated[Optional[Path], typer.Option(help="Set14 folder for the Fig. 5 crops (baboon, comic, monarch).")] = None,
) -> None:
    """Draw the paper's figures from a model: filters (Fig. 3, 4) and bicubic vs ESPCN crops (Fig. 5)."""
    from espcn_lab.checkpoint import load_model
    from espcn_lab.evaluate.figures import write_figures

    result = write_figures(load_model(model), set14, out)
    for key, value in result.items():
        shown = f"bicubic {value['bicubic']:.2f} dB, espcn {value['espcn']:.2f} dB" if isinstance(value, dict) else value
        typer.echo(f"{key}: {shown}")


# ---------------------------------------------------------------- quickstart
@app.command()
def quickstart(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for shards, runs and results.")] = Path("quickstart"),
    steps: Annotated[int, typer.Option(help="Training budget in optimizer steps (the same model on any machine; "
                                            "about 3 minutes on 2 idle cores by default).")] = DEFAULT_STEPS,
    minutes: Annotated[Optional[float], typer.Option(
        help="Also stop after this many minutes of training (the budget before --steps existed).")] = None,
) -> None:
    """Prep bundled photos, train the paper's x3 network for a fixed number of steps, print Set5 vs bicubic."""
    from espcn_lab.evaluate.run import format_table, write_json
    from espcn_lab.quickstart import quickstart as run_quickstart

    results = run_quickstart(out, steps, minutes)
    typer.echo(format_table(results))
    typer.echo(f"results: {write_json(results, out / 'eval.json')}")


# ---------------------------------------------------------------- entry point
def main(argv: Optional[list[str]] = None) -> None:
    """Console entry point: user errors become one line on stderr and exit code 2.

    A file-system error that escaped the commands (a read-only or full output folder) is one line too:
    exit 2 when it is about the paths given, 1 when the disk is full or failing. Click's own usage
    errors (unknown option, bad value) are already one line plus a usage hint. ``ESPCN_LAB_DEBUG=1``
    shows the traceback instead.
    """
    import os

    from espcn_lab.errors import OUT_OF_ROOM_ERRNOS, ConfigError, Interrupted, RunFailed, UserError

    try:
        app(args=argv)
    except (RunFailed, UserError, ConfigError) as err:
        if os.environ.get("ESPCN_LAB_DEBUG"):
            raise
        print(f"espcn-lab: error: {err}", file=sys.stderr)
        sys.exit(1 if isinstance(err, RunFailed) else 2)  # OutOfRoom (a full disk) is a RunFailed and a UserError
    except Interrupted as err:  # state saved; 128 + signal number, as a shell reports a signal
        print(f"espcn-lab: {err}", file=sys.stderr)
        sys.exit(128 + err.signum)
    except OSError as err:
        if os.environ.get("ESPCN_LAB_DEBUG"):
            raise
        where = f"{err.filename}: " if err.filename else ""
        print(f"espcn-lab: error: {where}{err.strerror or err}", file=sys.stderr)
        sys.exit(1 if err.errno in OUT_OF_ROOM_ERRNOS else 2)
    except KeyboardInterrupt:
        print("espcn-lab: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
