"""core.batch: a batch tried whole, split to singles on a bad entry, stopped by an outage."""

from __future__ import annotations

import json

from core.batch import Batch, NotAttempted, Result
from normalizer.ingest import Kind
from router.outcome import Decision


class Down(OSError):
    pass


class Stage:
    """Entries are ints; ``bad`` fails as a bad entry, ``down`` as a dependency outage."""

    def __init__(self, bad: set[int] = frozenset(), down: set[int] = frozenset()) -> None:
        self.bad, self.down = bad, down
        self.wholes: list[list[int]] = []
        self.singles: list[int] = []

    def _check(self, n: int) -> None:
        if n in self.down:
            raise Down(f"down at {n}")
        if n in self.bad:
            raise ValueError(f"bad {n}")

    async def whole(self, items: list[int]) -> list[int]:
        self.wholes.append(items)
        for n in items:
            self._check(n)
        return [n * 10 for n in items]

    async def single(self, n: int) -> int:
        self.singles.append(n)
        self._check(n)
        return n * 10


def _batch(size: int) -> Batch:
    return Batch(size, lambda exc: isinstance(exc, OSError), "test")


async def test_a_whole_batch_that_succeeds_is_never_split():
    stage, batch = Stage(), _batch(3)
    assert await batch.run({0: 1, 1: 2, 2: 3}, stage.single, stage.whole) == {0: 10, 1: 20, 2: 30}
    assert stage.wholes == [[1, 2, 3]] and stage.singles == []
    assert batch.results == [None, None, None]


async def test_a_bad_entry_fails_alone_and_the_others_succeed_once_each():
    stage, batch = Stage(bad={2}), _batch(3)
    assert await batch.run({0: 1, 1: 2, 2: 3}, stage.single, stage.whole) == {0: 10, 2: 30}
    # The failed whole committed nothing; each entry is then tried exactly once on its own.
    assert stage.singles == [1, 2, 3]
    assert [type(r).__name__ if r else None for r in batch.results] == [None, "ValueError", None]
    assert str(batch.results[1]) == "bad 2" and not batch.down


async def test_an_outage_of_the_whole_fails_the_first_and_leaves_the_rest_unattempted():
    stage, batch = Stage(down={1}), _batch(3)
    assert await batch.run({0: 1, 1: 2, 2: 3}, stage.single, stage.whole) == {}
    assert stage.singles == []
    assert isinstance(batch.results[0], Down)
    assert [isinstance(r, NotAttempted) for r in batch.results] == [False, True, True]
    assert batch.down


async def test_an_outage_among_singles_stops_the_batch_for_later_runs_too():
    stage, batch = Stage(down={2}), _batch(4)
    assert await batch.run({0: 1, 1: 2, 2: 3}, stage.single) == {0: 10}
    assert await batch.run({3: 4}, stage.single, stage.whole) == {}
    assert stage.singles == [1, 2] and stage.wholes == []
    assert batch.results[0] is None and isinstance(batch.results[1], Down)
    assert [isinstance(r, NotAttempted) for r in batch.results[2:]] == [True, True]


async def test_an_entry_failed_before_the_run_keeps_its_error_and_is_not_tried():
    stage, batch = Stage(), _batch(3)
    batch.fail([1], ValueError("unreadable"))
    assert await batch.run({0: 1, 2: 3}, stage.single, stage.whole) == {0: 10, 2: 30}
    assert stage.wholes == [[1, 3]]
    assert str(batch.results[1]) == "unreadable" and not batch.down


async def test_one_entry_goes_straight_to_single():
    stage, batch = Stage(), _batch(1)
    assert await batch.run({0: 7}, stage.single, stage.whole) == {0: 70}
    assert stage.wholes == [] and stage.singles == [7]


def test_outcomes_keep_their_strings_in_logs_metrics_and_json():
    assert [r for r in Result if r.acked] == ["ok", "dead", "gone"]
    assert f"message.{Kind.FOLLOWUP}" == "message.followup"
    assert json.dumps({"outcome": Decision.LOST_RACE, Kind.CREATED: 1}) == '{"outcome": "lost_race", "created": 1}'
    assert [str(k) for k in Kind] == ["created", "appended", "reopened", "followup", "auto", "dropped",
                                      "duplicate", "redelivered", "updated"]
    assert [str(d) for d in Decision] == ["assigned", "queued", "escalated", "lost_race", "skipped"]
