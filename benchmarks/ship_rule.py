"""Issue 13's ship rule on `espcn-lab eval --json` files: a candidate replaces the shipped model only if it
scores higher PSNR-Y on every held-out training source. Watched sets (Set5, Set14 and the other evaluation
sets) are printed but decide nothing.

    python benchmarks/ship_rule.py CANDIDATE.eval.json [CANDIDATE2.eval.json ...] --shipped SHIPPED.eval.json

Per candidate and source it prints the mean PSNR-Y of both models, the difference, and how many images the
candidate wins. The verdict is "ships" or "does not ship" with the sources it loses. If more than one
candidate passes, the best is the one with the highest mean difference over the held-out sources. The exit
status is 0 when some candidate passes and 1 when none does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

WATCHED = ("Set5", "Set14", "BSD100", "B100", "Urban100", "Manga109", "Sun-Hays80", "General100")


def _sets(path: Path) -> dict[str, dict]:
    return json.loads(path.read_text())["datasets"]


def compare(candidate: Path, shipped: Path) -> tuple[bool, float, list[str]]:
    """Print the candidate against the shipped model; (passes, mean held-out gain, printed lines)."""
    new, old = _sets(candidate), _sets(shipped)
    lines, gains, losing = [f"{candidate.name} vs {shipped.name}"], [], []
    for name in new:
        if name not in old:
            continue
        a, b = new[name]["model"]["psnr_y"], old[name]["model"]["psnr_y"]
        before = {image["name"]: image["model"]["psnr_y"] for image in old[name]["images"]}
        if set(before) != {image["name"] for image in new[name]["images"]}:
            raise SystemExit(f"{name}: {candidate} and {shipped} scored different images")
        wins = sum(image["model"]["psnr_y"] > before[image["name"]] for image in new[name]["images"])
        watched = name in WATCHED
        if not watched:
            gains.append(a - b)
            if a <= b:
                losing.append(name)
        lines.append(f"  {name:<18} {a:8.3f} vs {b:8.3f}  {a - b:+.3f} dB  wins {wins}/{len(new[name]['images'])}"
                     + ("  (watched)" if watched else ""))
    if not gains:
        raise SystemExit(f"{candidate}: no held-out source in common with {shipped}")
    verdict = "ships" if not losing else f"does not ship (loses {', '.join(losing)})"
    mean = sum(gains) / len(gains)
    lines.append(f"  mean held-out gain {mean:+.3f} dB: {verdict}")
    return not losing, mean, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidates", nargs="+", type=Path)
    parser.add_argument("--shipped", required=True, type=Path)
    args = parser.parse_args(argv)
    passing = []
    for path in args.candidates:
        ok, mean, lines = compare(path, args.shipped)
        print("\n".join(lines))
        if ok:
            passing.append((mean, path))
    if not passing:
        print("no candidate ships")
        return 1
    print(f"best: {max(passing)[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
