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
def prep() -> None:
    """Build WebDataset shards of LR/HR patch pairs from ImageNet, an image folder or a HF dataset."""
    raise NotImplementedError("prep")


# ---------------------------------------------------------------- fit / eval (issue 3)
@app.command()
def fit() -> None:
    """Train ESPCN from a YAML config with dotted KEY=VALUE overrides."""
    raise NotImplementedError("fit")


@app.command(name="eval")
def evaluate() -> None:
    """Score a model on folders of HR images (PSNR-Y / SSIM-Y against bicubic)."""
    raise NotImplementedError("eval")


# ---------------------------------------------------------------- upscale / bench / export (issue 5)
@app.command()
def upscale() -> None:
    """Super-resolve images, folders or videos."""
    raise NotImplementedError("upscale")


@app.command()
def bench() -> None:
    """Measure latency and frames/s against baselines."""
    raise NotImplementedError("bench")


@app.command()
def export() -> None:
    """Export a model for deployment (ONNX)."""
    raise NotImplementedError("export")


# ---------------------------------------------------------------- sweep (issue 6)
@app.command()
def sweep() -> None:
    """Run a W&B-format sweep file locally, without a W&B server."""
    raise NotImplementedError("sweep")


# ---------------------------------------------------------------- entry point
def main(argv: Optional[list[str]] = None) -> None:
    """Console entry point: user errors become one line on stderr and exit code 2.

    Click's own usage errors (unknown option, bad value) are already one line plus a usage hint.
    """
    from espcn_lab.config import ConfigError
    from espcn_lab.errors import UserError

    try:
        app(args=argv)
    except (UserError, ConfigError, FileNotFoundError) as err:
        print(f"espcn-lab: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("espcn-lab: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
