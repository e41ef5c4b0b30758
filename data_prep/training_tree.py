"""Rebuild the training photo tree of the shipped models from fetched public repositories.

The photos are not in this repository; this script writes them, byte for byte, from local bare
copies of the repositories named in ``SOURCES`` (pinned commits), and records every file it wrote
(repository, commit, path, sha256) in ``<out>/SOURCES.json``. ``docs/data_card.md`` describes the
result. ImageNet photos are laid out as the ILSVRC tree (``imagenet/train/<wnid>/<name>.JPEG``) so
``espcn-lab prep --imagenet-dir`` builds their shards exactly as it would on the real ILSVRC set.

Evaluation sets never enter the tree: of BSDS500 only the ``test`` split is taken (``val`` is BSD100),
and of the DIV2K grey crops only names 0001-0800 (DIV2K train; 0801-0900 is DIV2K validation).

    python -m data_prep.training_tree --mirror /work/.mirror --out /work/sr_data
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional


@dataclass(frozen=True)
class Source:
    """One repository folder: which files to take and where they go in the tree."""

    name: str
    repo: str
    commit: str
    prefix: str
    target: Callable[[str], Optional[str]]  # repository path -> tree path, or None to leave the file out
    licence: str


def _imagenet_sample(path: str) -> Optional[str]:
    match = re.fullmatch(r"(n\d{8})_[^/]+\.JPEG", path)
    return f"imagenet/train/{match[1]}/{path}" if match else None


def _imagen(path: str) -> Optional[str]:
    match = re.fullmatch(r"imagen/((n\d{8})_\d+)_[^/]+\.jpg", path)
    return f"imagenet/train/{match[2]}/{match[1]}.JPEG" if match else None


def _bsds500_test(path: str) -> Optional[str]:
    name = path.rsplit("/", 1)[-1]
    return f"bsds500_test/{name}" if name.endswith(".jpg") else None


def _div2k_grey(path: str) -> Optional[str]:
    name = path.rsplit("/", 1)[-1]
    match = re.fullmatch(r"(\d{4})(-\d)?\.png", name)  # 0168-1.png: several crops of one photo
    return f"div2k_grey/{name}" if match and 1 <= int(match[1]) <= 800 else None  # DIV2K train only


def _city100(path: str) -> Optional[str]:
    match = re.fullmatch(r"City100/City100_(\w+)/(\d{3})H\.PNG", path)
    return f"city100/{match[1]}_{match[2]}.png" if match else None


SOURCES = (
    Source("imagenet-sample-images", "EliSchwartz/imagenet-sample-images", "bc69043e2862758a1906c6a24a792bb28c6bb2ff",
           "", _imagenet_sample, "ImageNet terms of access (non-commercial research and education)"),
    Source("imagen", "ajschumacher/imagen", "2e8718956e3bb046db9a8e488c2254fd9846b6c5",
           "imagen/", _imagen, "ImageNet terms of access (non-commercial research and education)"),
    Source("bsds500-test", "Sisso16/ssn_pytorch", "c4f9ac8c43397cbacbf2e2ba1505efafa769435d",
           "BSR/BSDS500/data/images/test/", _bsds500_test, "BSDS500 research terms (Arbelaez et al., TPAMI 2011)"),
    Source("div2k-grey", "igv/FSRCNN-TensorFlow", "7497ae69414751bee8132af3f1fe397dc536a2e9",
           "Train/", _div2k_grey, "DIV2K research terms (Agustsson & Timofte, CVPRW 2017)"),
    Source("city100", "ngchc/CameraSR", "336cac11f5ba409134b2bc5165e9ad6aa4a07e65",
           "City100/", _city100, "MIT (repository licence; Chen et al., CVPR 2019)"),
)


def git_dir(mirror: Path, repo: str) -> Path:
    """The bare git directory of ``repo`` (``owner/name``) under the ``fetch`` mirror root."""
    base = mirror / repo.replace("/", "+") / "repo"
    for candidate in (base / ".git", base):
        if (candidate / "objects").is_dir():
            return candidate
    raise SystemExit(f"training_tree: no copy of {repo} under {mirror} (fetch github:{repo} first)")


def _git(gdir: Path, *args: str, data: Optional[bytes] = None) -> bytes:
    return subprocess.run(["git", f"--git-dir={gdir}", *args], input=data, capture_output=True, check=True).stdout


def list_blobs(gdir: Path, commit: str, prefix: str) -> list[tuple[str, str]]:
    """(path, blob id) of every file under ``prefix`` at ``commit``."""
    out = _git(gdir, "ls-tree", "-r", "-z", commit, "--", prefix or ".")
    rows = []
    for entry in out.split(b"\0"):
        if entry:
            meta, path = entry.decode().split("\t", 1)
            if meta.split()[1] == "blob":
                rows.append((path, meta.split()[2]))
    return rows


def read_blobs(gdir: Path, blob_ids: list[str]) -> list[bytes]:
    """Contents of many blobs in one ``git cat-file --batch`` call."""
    out = _git(gdir, "cat-file", "--batch", data="".join(f"{b}\n" for b in blob_ids).encode())
    blobs, pos = [], 0
    for _ in blob_ids:
        header_end = out.index(b"\n", pos)
        size = int(out[pos:header_end].split()[2])
        blobs.append(out[header_end + 1:header_end + 1 + size])
        pos = header_end + 1 + size + 1
    return blobs


def build_tree(mirror: Path, out: Path) -> dict:
    """Write every source's files under ``out``; return the record written to ``out/SOURCES.json``."""
    record, seen = {"sources": [], "files": []}, {}
    for src in SOURCES:
        gdir = git_dir(mirror, src.repo)
        if _git(gdir, "cat-file", "-t", src.commit).strip() != b"commit":
            raise SystemExit(f"training_tree: {src.repo} has no commit {src.commit}")
        chosen = [(path, blob, src.target(path)) for path, blob in list_blobs(gdir, src.commit, src.prefix)]
        chosen = [c for c in chosen if c[2] is not None]
        written = duplicates = 0
        for (path, _, target), data in zip(chosen, read_blobs(gdir, [c[1] for c in chosen])):
            digest = hashlib.sha256(data).hexdigest()
            if digest in seen:  # the same photo in two repositories: keep the first copy only
                duplicates += 1
                continue
            seen[digest] = target
            dest = out / target
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not (dest.is_file() and hashlib.sha256(dest.read_bytes()).hexdigest() == digest):
                tmp = dest.with_name(f".{dest.name}.tmp")
                tmp.write_bytes(data)
                tmp.replace(dest)
            record["files"].append({"path": target, "repo": src.repo, "commit": src.commit, "source_path": path,
                                    "sha256": digest, "bytes": len(data)})
            written += 1
        record["sources"].append({"name": src.name, "repo": src.repo, "commit": src.commit, "prefix": src.prefix,
                                  "files": written, "duplicates_dropped": duplicates, "licence": src.licence})
        print(f"{src.name}: {written} files ({duplicates} duplicates dropped) from {src.repo}@{src.commit[:7]}",
              file=sys.stderr)
    (out / "SOURCES.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mirror", type=Path, required=True, help="root of the fetched bare repositories")
    parser.add_argument("--out", type=Path, required=True, help="where the tree is written")
    args = parser.parse_args(argv)
    record = build_tree(args.mirror, args.out)
    print(f"{len(record['files'])} files under {args.out}; provenance in {args.out / 'SOURCES.json'}")


if __name__ == "__main__":
    main()
