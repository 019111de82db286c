"""What every parser's fuzz property shares: the example budget, the strategies, the check."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict

import msgpack
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from connectors.inbound import Inbound
from core.envelope import Envelope
from core.errors import PermanentError

# `make test` runs a few hundred inputs per property, reproducibly; `make fuzz` sets FUZZ_EXAMPLES.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
PER_INPUT_S = 2.0  # generous for a loaded CI machine; a hang is minutes, not seconds
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("FUZZ_EXAMPLES"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

text = st.text(max_size=40)
scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True), text)
json_values = st.recursive(scalar, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(text, inner, max_size=4)), max_leaves=20)


@contextmanager
def bounded(what: str) -> Iterator[None]:
    """The block must end within ``PER_INPUT_S``. The cyclic collector is held off meanwhile:
    late in the suite a full collection walks every object the session made (seconds on a
    loaded machine), which is the test process's heap, not the parser's work."""
    enabled = gc.isenabled()
    gc.disable()
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        if enabled:
            gc.enable()
        assert elapsed < PER_INPUT_S, f"{elapsed:.2f}s for {what}"


def check_parse(parse, env: Envelope) -> None:
    """Inbound messages or a PermanentError naming its reason — never another exception, never a hang."""
    with bounded(f"{len(env.payload)} bytes"):
        try:
            result = parse(env)
        except PermanentError as exc:
            assert str(exc)
            return
    assert isinstance(result, list) and all(isinstance(i, Inbound) for i in result)
    for inbound in result:
        assert inbound.dedup_key and isinstance(inbound.text, str)
        msgpack.packb(asdict(inbound), use_bin_type=True)  # publishable, storable
