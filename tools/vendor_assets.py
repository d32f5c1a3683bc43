"""Copy the browser libraries the UI uses from node_modules into functions/ui/static/vendor/.

The UI has no build chain and never loads anything from a CDN (its CSP allows only 'self'), so
third-party browser code is vendored by this command and committed. Run
`python -m tools.vendor_assets` after `npm install` bumps chart.js; `--check` exits 1 when the
committed copy differs from node_modules (CI drift check).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "functions" / "ui" / "static" / "vendor"
# (source under node_modules, target name under static/vendor)
ASSETS = (
    ("chart.js/dist/chart.umd.js", "chart.umd.js"),
    ("chart.js/LICENSE.md", "chart.js.LICENSE.md"),
)


def main(argv: list[str] | None = None) -> int:
    """Copy (or with --check, compare) every vendored asset."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on drift")
    parser.add_argument("--node-modules", type=Path, default=ROOT / "node_modules")
    args = parser.parse_args(argv)
    VENDOR.mkdir(parents=True, exist_ok=True)
    drift = 0
    for src_rel, name in ASSETS:
        src = args.node_modules / src_rel
        if not src.is_file():
            sys.stderr.write(f"missing {src}; run `npm install chart.js` first\n")
            return 2
        dst = VENDOR / name
        data = src.read_bytes()
        if args.check:
            if not dst.is_file() or dst.read_bytes() != data:
                sys.stderr.write(f"{dst.relative_to(ROOT)} differs from {src_rel}\n")
                drift += 1
            continue
        dst.write_bytes(data)
        sys.stdout.write(f"vendored {src_rel} -> {dst.relative_to(ROOT)} ({len(data)} bytes)\n")
    return 1 if drift else 0


if __name__ == "__main__":
    sys.exit(main())
