"""The short chaos run of `make test`: 20 kills, a Redis restart and a database lock under mixed load."""

import ast
import subprocess
import sys

import pytest


@pytest.mark.timeout(600)  # the drain after the faults depends on the machine's speed
def test_short_chaos_run_keeps_every_invariant():
    # Its own process, as `make chaos` runs it: the run configures logging and starts processes.
    done = subprocess.run(
        [sys.executable, "-m", "ops.chaos", "--seconds", "8", "--kills", "20", "--db-outage", "3",
         "--conversations", "20", "--seed", "7"],
        capture_output=True, text=True, timeout=590,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr[-3000:]
    summary = dict(line.split(None, 1) for line in out.splitlines() if line and not line.startswith("chaos:"))
    assert int(summary["kills"]) == 20 and summary["redis_restarts"] == "1"
    accepted = ast.literal_eval(summary["accepted"])
    assert set(accepted) == {"email", "webform", "wechat", "sdk", "voice"} and min(accepted.values()) > 0
    assert summary["lost"] == "0" and summary["duplicates"] == "0" and summary["conversations_split"] == "0"
    assert summary["dead_letters"] == "0" and summary["tickets_neither_assigned_nor_queued"] == "0"
    assert "chaos: all invariants hold" in out
