"""Role processes freeze what start-up made and space out young collections."""

import json
import subprocess
import sys

from core import gctune

_PROBE = """
import gc, json
from core import gctune
before = gc.get_freeze_count()
junk = [{"n": i} for i in range(1000)]
gctune.settle()
print(json.dumps([gc.get_threshold(), before, gc.get_freeze_count()]))
"""


def test_settle_freezes_startup_objects_and_sets_the_thresholds():
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True).stdout
    threshold, before, after = json.loads(out)
    assert threshold == [gctune.GEN0, gctune.GEN1, gctune.GEN2] == [50_000, 20, 20]
    assert before == 0
    assert after >= 1000  # the start-up objects (at least the probe's own dicts) are frozen
