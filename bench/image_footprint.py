"""Installed size of each image's Python environment, built the way its Dockerfile builds it.

    python -m bench.image_footprint [--ref GIT_REF] [--out DIR]

For each `docker/<name>.Dockerfile` of the tree (the working tree, or `--ref` exported with
`git archive`), a fresh venv gets exactly the build stage's `pip install` commands, run in a copy
of the tree with the stage's file COPYs that rename (`docker/requirements/x.txt ./requirements.txt`)
applied; its size on disk is reported with the empty venv's as the baseline, followed by the
default install (`pip install .`) for comparison. Identical install
steps are measured once. Packages come from the pip configuration in effect, as `./dev` installs
them (pip.conf / PIP_* variables: the local wheel index and find-links). Not Docker, so the
figure is the venv the image's runtime stage copies (`/opt/venv`), not the base image; the
interpreter is this machine's.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tree(ref: str | None, into: Path) -> Path:
    """A pristine copy of the repository at `ref` (working tree when None, local state left out)."""
    if ref:
        into.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
        return into
    ignore = shutil.ignore_patterns(".data", "node_modules", ".git", "__pycache__", "*.egg-info", "build")
    shutil.copytree(ROOT, into, ignore=ignore, dirs_exist_ok=True)
    return into


def _build_steps(dockerfile: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """(renaming COPYs, `pip install` RUN commands) of the first (build) stage."""
    copies: list[tuple[str, str]] = []
    runs: list[str] = []
    stages = 0
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        op, _, args = line.partition(" ")
        if op.upper() == "FROM":
            stages += 1
            if stages > 1:
                break
        elif op.upper() == "COPY" and not args.startswith("--"):
            src, dst = args.split()[0], args.split()[-1]
            if len(args.split()) == 2 and Path(dst).name != Path(src).name:
                copies.append((src, dst))
        elif op.upper() == "RUN" and "pip install" in args:
            runs.append(args)
    return copies, runs


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def _measure(tree: Path, copies: list[tuple[str, str]], runs: list[str], scratch: Path) -> int:
    env_dir = scratch / "venv"
    shutil.rmtree(env_dir, ignore_errors=True)
    venv.create(env_dir, with_pip=True)
    work = scratch / "src"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(tree, work)
    for src, dst in copies:
        shutil.copy(tree / src, work / dst)
    env = {**os.environ, "PATH": f"{env_dir / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(env_dir),
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    for cmd in runs:
        done = subprocess.run(cmd, shell=True, cwd=work, env=env, capture_output=True, text=True)
        if done.returncode:  # pip's stderr only when it failed (it warns about every absent index folder)
            sys.exit(f"{cmd!r} failed in {work}:\n{done.stderr}")
    return _size(env_dir)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", help="git ref to measure instead of the working tree")
    parser.add_argument("--out", type=Path, default=ROOT / ".data" / "footprint")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        tree = _tree(args.ref, Path(tmp) / "tree")
        scratch = Path(tmp) / "scratch"
        scratch.mkdir()
        baseline = _measure(tree, [], [], scratch)
        print(f"{'image':<12} {'venv MB':>8}  (empty venv {baseline / 1e6:.1f} MB; {args.ref or 'working tree'})")
        done: dict[str, int] = {}
        for dockerfile in sorted((tree / "docker").glob("*.Dockerfile")):
            copies, runs = _build_steps(dockerfile)
            key = hashlib.sha256(repr(runs).encode() + b"".join((tree / s).read_bytes() for s, _ in copies)).hexdigest()
            if key not in done:
                done[key] = _measure(tree, copies, runs, scratch)
            print(f"{dockerfile.name.removesuffix('.Dockerfile'):<12} {done[key] / 1e6:>8.1f}", flush=True)
        # For comparison: `pip install mcp-sentinel`, the default install.
        runs = ["pip install ."]
        key = hashlib.sha256(repr(runs).encode()).hexdigest()
        if key not in done:
            done[key] = _measure(tree, [], runs, scratch)
        print(f"{'(default)':<12} {done[key] / 1e6:>8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
