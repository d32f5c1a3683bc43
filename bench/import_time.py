"""Cold-import time of each deployable's entry module (scale-from-zero cost before serving).

    python -m bench.import_time [--runs 5] [--strict]

Each import runs in a fresh interpreter; the same-run baseline is `python -c pass`, so the figure
that matters (ms added by our import graph) is comparable across machines. Target: <= 300 ms added.
`-X importtime` names the slowest top-level packages of each graph so regressions are actionable.

Next to the import figure, `+app` is what a Knative cold start pays before it can serve: the
import plus building the app the way `python -m <deployable>` does (settings from a typical
environment, then `create_app(...)`), again as ms added over the baseline. Backends are not
contacted (nothing listens at the addresses given), so connection set-up is not in it; clients
that a deployable builds in its startup hook (UI: httpx, sidecar: aiohttp session) are not
either — both create a verified SSL context there (about 40-60 ms here), see docs/benchmarks.md.
The machine is shared: the median of `--runs` is reported with the spread (min-max) of the import.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_MS = 300.0
MODULES = {
    "ingest": "functions.ingest.app",
    "processor": "functions.processor.app",
    "api": "functions.api.app",
    "ui": "functions.ui.app",
    # Not a function, but it also scales with traffic and its start-up is on the request path.
    "sidecar": "sidecar.app",
}

# Import + build the app as each entry point does before serving (see module docstring).
_TMP = "import tempfile; tmp = tempfile.mkdtemp(); "
READY = {
    "ingest": (
        "from functions.ingest.app import create_app; from functions.ingest.settings import IngestSettings; "
        "from mcp_sentinel import telemetry; env = {'INGEST_API_KEYS': 'k', 'KAFKA_BROKERS': '127.0.0.1:9'}; "
        "create_app(IngestSettings.from_env(env), tracer_provider=telemetry.setup_tracing('ingest', env), "
        "event_spans=telemetry.exporting(env))"
    ),
    "processor": (
        "from functions.processor.app import create_app; from functions.processor.settings import ProcessorSettings; "
        "create_app(ProcessorSettings.from_env({'CLICKHOUSE_URL': 'http://127.0.0.1:9'}))"
    ),
    "api": (
        "from functions.api.app import create_app; from functions.api.settings import ApiSettings; "
        "create_app(ApiSettings.from_env({'JWT_SECRET': 'x' * 32, 'API_KEYS': 'k', 'ADMIN_API_KEYS': 'a'}))"
    ),
    "ui": _TMP + (
        "from functions.ui.app import create_app; from functions.ui.settings import UiSettings; "
        "create_app(UiSettings.from_env({'UI_SESSION_DIR': tmp, 'API_UPSTREAM': 'http://127.0.0.1:9'}))"
    ),
    "sidecar": _TMP + (
        "from sidecar.app import create_app, create_metrics_app, state_of; "
        "from sidecar.settings import SidecarSettings; "
        "app = create_app(SidecarSettings.from_env({'UPSTREAM_URL': 'http://127.0.0.1:9', 'AUDIT_SPOOL_DIR': tmp})); "
        "create_metrics_app(state_of(app))"
    ),
}


def _time_once(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, capture_output=True)
    return (time.perf_counter() - t0) * 1000


def measure_all(code: str, runs: int) -> list[float]:
    """Wall-clock ms of `python -c code` in each of `runs` fresh interpreters."""
    return [_time_once(code) for _ in range(runs)]


def measure(code: str, runs: int) -> float:
    """Median wall-clock ms of `python -c code` over `runs` fresh interpreters."""
    return statistics.median(measure_all(code, runs))


OWN = frozenset({"functions", "sidecar", "mcp_sentinel", "workflows", "examples"})


def heaviest(module: str, top: int = 3) -> list[tuple[str, float]]:
    """Third-party packages our own modules import directly, by cumulative import ms (-X importtime)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], cwd=REPO,
                          capture_output=True, text=True, check=True)
    rows = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "cumulative" not in line:
            _, cumulative, raw = line.split("|", 2)
            rows.append(((len(raw) - len(raw.lstrip()) - 1) // 2, raw.strip(), int(cumulative) / 1000))
    # importtime prints children before parents; walking backwards gives pre-order with a parent stack.
    totals: dict[str, float] = {}
    stack: list[tuple[int, str]] = []
    for level, name, ms in reversed(rows):
        while stack and stack[-1][0] >= level:
            stack.pop()
        parent = stack[-1][1] if stack else ""
        root = name.split(".")[0]
        if root not in OWN and parent.split(".")[0] in OWN:
            totals[root] = totals.get(root, 0.0) + ms
        stack.append((level, name))
    return sorted(totals.items(), key=lambda kv: kv[1], reverse=True)[:top]


def importable(module: str) -> bool:
    """Whether the module exists yet (areas land at different times)."""
    proc = subprocess.run([sys.executable, "-c", f"import importlib.util as u; exit(u.find_spec('{module}') is None)"],
                          cwd=REPO, capture_output=True)
    return proc.returncode == 0


def main(argv: list[str] | None = None) -> int:
    """Print per-deployable import ms, ms added over the baseline and the ratio to it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a deployable misses the target")
    args = parser.parse_args(argv)
    baseline = measure("pass", args.runs)
    print(f"baseline `python -c pass`: {baseline:.1f} ms (median of {args.runs})")
    print(f"{'deployable':<11} {'module':<24} {'ms':>7} {'added':>7} {'spread':>9} {'ratio':>6} {'+app':>7}"
          f"  verdict  heaviest imports")
    missed = []
    for name, module in MODULES.items():
        if not importable(module):
            print(f"{name:<11} {module:<24} {'-':>7} {'-':>7} {'-':>9} {'-':>6} {'-':>7}  absent")
            continue
        samples = measure_all(f"import {module}", args.runs)
        ms = statistics.median(samples)
        added = ms - baseline
        spread = f"{min(samples) - baseline:.0f}-{max(samples) - baseline:.0f}"
        try:
            ready = f"{measure(READY[name], args.runs) - baseline:7.1f}" if name in READY else f"{'-':>7}"
        except subprocess.CalledProcessError:
            ready = f"{'error':>7}"  # the factory's signature moved on; the import figure still stands
        verdict = "ok" if added <= TARGET_MS else "SLOW"
        if verdict != "ok":
            missed.append(name)
        top = ", ".join(f"{pkg} {t:.0f}ms" for pkg, t in heaviest(module))
        print(f"{name:<11} {module:<24} {ms:7.1f} {added:7.1f} {spread:>9} {ms / baseline:5.1f}x {ready}"
              f"  {verdict:<7}  {top}")
    print(f"target: <= {TARGET_MS:.0f} ms added per deployable; over target: {', '.join(missed) or 'none'}")
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
