"""The pipeline processes' GC settings (mcp_sentinel.gc_tuning), checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import gc, json
from mcp_sentinel.gc_tuning import tune_gc
before = gc.get_freeze_count()
tune_gc()
print(json.dumps([gc.get_threshold(), before, gc.get_freeze_count()]))
"""


def test_tune_gc_freezes_start_up_objects_and_raises_the_young_threshold() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60)
    threshold, before, after = json.loads(out.stdout)
    assert threshold == [50_000, 20, 20]
    assert before == 0 and after > 0
