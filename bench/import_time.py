"""Cold-import time of each deployable's entry module (scale-from-zero cost before serving).

    python -m bench.import_time [--runs 5] [--strict]

Each import runs in a fresh interpreter, timed until the import is done (not until the interpreter
has finalized: see `_run_once`); the same-run baseline is `python -c pass`, so the figure
that matters (ms added by our import graph) is comparable across machines. Target: <= 300 ms added.
`-X importtime` names the slowest top-level packages of each graph so regressions are actionable.

Next to the import figure, `+app` is what a Knative cold start pays before it can serve: the
import plus building the app the way `python -m <deployable>` does (settings from a typical
environment, then `create_app(...)`), again as ms added over the baseline. Backends are not
contacted (nothing listens at the addresses given), so connection set-up is not in it; clients
that a deployable builds in its startup hook (UI: httpx, sidecar: aiohttp session) are not
either — both create a verified SSL context there (about 40-60 ms here), see docs/benchmarks.md.
The machine is shared: the median of `--runs` is reported with the spread (min-max) of the import.

Bytecode: the images run `compileall` at build time (docker/*.Dockerfile), so a pod never compiles
our sources. This development environment sets PYTHONDONTWRITEBYTECODE=1, so without care every
measured interpreter would compile the project's own modules (≈130 ms for the API alone). The
bench therefore gives its interpreters a private PYTHONPYCACHEPREFIX, fills it in one unmeasured
warm-up run per snippet, and measures with bytecode for every module, as in production;
`--no-bytecode` measures with the environment as it is instead.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
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
        "from mcp_sentinel import telemetry; "
        "env = {'INGEST_API_KEYS': 'k#server=ns/s', 'KAFKA_BROKERS': '127.0.0.1:9'}; "
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


ENV: dict[str, str] | None = None  # the measured interpreters' environment (None: inherit ours)


def use_bytecode_cache(prefix: Path) -> None:
    """Measure with bytecode for every module, kept under `prefix` (see module docstring)."""
    global ENV
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(prefix)
    ENV = env


def _run_once(code: str) -> tuple[float, float]:
    # The clock stops when the child has run `code` (it writes one byte then), not when it exits:
    # a cold start waits for the import, never for the interpreter's finalization, which grows
    # with the number of modules loaded (about 20 ms for FastAPI here) and would be counted
    # otherwise. CPU (user + system, read at exit) hardly depends on what the neighbours do, so
    # it is the figure to compare on a shared machine; it does include the finalization.
    signalled = code + "\nimport os as _bench_os; _bench_os.write(1, b'!')"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", signalled], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ENV)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.read(1)
    wall = (time.perf_counter() - t0) * 1000
    proc.stdout.read()  # drain whatever else the snippet printed, so the child never blocks on a full pipe
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    if proc.returncode or first != b"!":
        raise subprocess.CalledProcessError(proc.returncode or 1, code, stderr=stderr)
    return wall, (usage.ru_utime + usage.ru_stime) * 1000


def _time_once(code: str) -> float:
    return _run_once(code)[0]


def measure_both(code: str, runs: int) -> tuple[list[float], list[float]]:
    """Wall-clock ms and child CPU ms of `python -c code` in each of `runs` fresh interpreters."""
    _run_once(code)  # unmeasured warm-up: fills the bytecode cache and the OS page cache
    pairs = [_run_once(code) for _ in range(runs)]
    return [w for w, _ in pairs], [c for _, c in pairs]


def measure_all(code: str, runs: int) -> list[float]:
    """Wall-clock ms of `python -c code` in each of `runs` fresh interpreters."""
    return measure_both(code, runs)[0]


def measure(code: str, runs: int) -> float:
    """Median wall-clock ms of `python -c code` over `runs` fresh interpreters."""
    return statistics.median(measure_all(code, runs))


OWN = frozenset({"functions", "sidecar", "mcp_sentinel", "workflows", "examples"})


def heaviest(module: str, top: int = 3) -> list[tuple[str, float]]:
    """Third-party packages our own modules import directly, by cumulative import ms (-X importtime)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], cwd=REPO,
                          capture_output=True, text=True, check=True, env=ENV)
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
    parser.add_argument("--no-bytecode", action="store_true",
                        help="measure with the inherited environment (here PYTHONDONTWRITEBYTECODE=1: sources compile)")
    args = parser.parse_args(argv)
    if args.no_bytecode:
        return _report(args)
    with tempfile.TemporaryDirectory(prefix="import-time-pyc-") as prefix:
        use_bytecode_cache(Path(prefix))
        return _report(args)


def _report(args: argparse.Namespace) -> int:
    print(f"bytecode: {'as the environment gives it' if ENV is None else 'cached for every module (as in the images)'}")
    base_wall, base_cpu = (statistics.median(x) for x in measure_both("pass", args.runs))
    print(f"baseline `python -c pass`: {base_wall:.1f} ms wall, {base_cpu:.1f} ms CPU (median of {args.runs}); "
          f"load average {os.getloadavg()[0]:.1f}")
    print("added = ms over the baseline; cpu = the child's CPU ms over the baseline's; +app = import + create_app")
    print(f"{'deployable':<11} {'module':<24} {'ms':>7} {'added':>7} {'spread':>9} {'ratio':>6} {'cpu':>6} "
          f"{'+app':>7} {'cpu':>6}  verdict  heaviest imports")
    missed = []
    for name, module in MODULES.items():
        if not importable(module):
            print(f"{name:<11} {module:<24} {'-':>7} {'-':>7} {'-':>9} {'-':>6} {'-':>6} {'-':>7} {'-':>6}  absent")
            continue
        samples, cpus = measure_both(f"import {module}", args.runs)
        ms = statistics.median(samples)
        added = ms - base_wall
        spread = f"{min(samples) - base_wall:.0f}-{max(samples) - base_wall:.0f}"
        cpu = f"{statistics.median(cpus) - base_cpu:6.0f}"
        try:
            app_wall, app_cpu = measure_both(READY[name], args.runs)
            ready = f"{statistics.median(app_wall) - base_wall:7.0f} {statistics.median(app_cpu) - base_cpu:6.0f}"
        except (KeyError, subprocess.CalledProcessError):
            ready = f"{'-':>7} {'-':>6}"  # no factory snippet, or its signature moved on: the import figure stands
        verdict = "ok" if added <= TARGET_MS else "SLOW"
        if verdict != "ok":
            missed.append(name)
        top = ", ".join(f"{pkg} {t:.0f}ms" for pkg, t in heaviest(module))
        print(f"{name:<11} {module:<24} {ms:7.1f} {added:7.1f} {spread:>9} {ms / base_wall:5.1f}x {cpu} {ready}"
              f"  {verdict:<7}  {top}")
    print(f"target: <= {TARGET_MS:.0f} ms added per deployable; over target: {', '.join(missed) or 'none'}")
    if importable(MODULES["api"]):
        _report_api_mounts(args.runs)
    return 1 if args.strict and missed else 0


# In a fresh interpreter: the API app as a cold start builds it, then the first request's mount.
_API_MOUNT = READY["api"].replace("create_app(", "app = create_app(", 1) + (
    "; import time; t = time.perf_counter(); app.state.route_mounter.mount(MODULE); "
    "print(round((time.perf_counter() - t) * 1000, 2))"
)


def api_mount_ms(module: str, runs: int) -> float:
    """Median ms a cold API app spends mounting `module` for the first request that needs it."""
    samples = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", _API_MOUNT.replace("MODULE", repr(module))], cwd=REPO, env=ENV,
                             capture_output=True, text=True, check=True)
        samples.append(float(out.stdout.split()[-1]))
    return statistics.median(samples)


def _report_api_mounts(runs: int) -> None:
    # The API builds its route modules on first need (functions/api/lazy_routes.py): the first
    # request of a cold start pays for its own module on top of `+app`, so that cost is shown too.
    try:
        from functions.api.routes import EAGER, GROUPS
    except ImportError:
        print("api: every route module is built at start-up in this tree")
        return

    try:
        costs = {g.module: api_mount_ms(g.module, max(3, runs // 2)) for g in GROUPS if g.module not in EAGER}
    except subprocess.CalledProcessError as exc:  # e.g. this bench run against an older tree
        print(f"api: could not time route-module mounts: {exc.stderr.strip().splitlines()[-1:]}")
        return
    slowest = max(costs, key=costs.__getitem__)
    median = statistics.median(costs.values())
    print(f"api: a cold app's first request also mounts its route module: median {median:.0f} ms, "
          f"slowest {slowest} {costs[slowest]:.0f} ms ({', '.join(f'{m} {c:.0f}' for m, c in costs.items())})")


if __name__ == "__main__":
    sys.exit(main())
