"""The short chaos run of `make test`: 20 kills, a Redis restart and a database lock under load."""

import pytest

from ops import chaos


@pytest.mark.timeout(600)  # the drain after the faults depends on the machine's speed
def test_short_chaos_run_keeps_every_invariant(capsys):
    code = chaos.main(["--seconds", "8", "--kills", "20", "--db-outage", "3", "--conversations", "20", "--seed", "7"])
    out = capsys.readouterr().out
    summary = dict(line.split(None, 1) for line in out.splitlines() if line and not line.startswith("chaos:"))
    assert code == 0, out
    assert int(summary["kills"]) == 20 and summary["redis_restarts"] == "1"
    assert int(summary["accepted_mail"]) > 0 and int(summary["accepted_forms"]) > 0
    assert summary["lost"] == "0" and summary["duplicates"] == "0" and summary["conversations_split"] == "0"
    assert summary["dead_letters"] == "0" and summary["tickets_neither_assigned_nor_queued"] == "0"
    assert "chaos: all invariants hold" in out
