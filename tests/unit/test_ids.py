"""ULIDs as the envelopes and events carry them: python-ulid reads back what we write."""

import time

from hypothesis import given
from hypothesis import strategies as st
from ulid import ULID

from core import ids


@given(st.integers(min_value=0, max_value=(1 << 128) - 1))
def test_encode_writes_the_same_text_as_python_ulid(value):
    text = ids.encode(value)
    assert text == str(ULID.from_int(value))
    assert int(ULID.from_str(text)) == value


def test_a_new_id_carries_the_current_millisecond():
    before = time.time_ns() // 1_000_000
    made = ULID.from_str(ids.new_id())
    after = time.time_ns() // 1_000_000
    assert before <= made.milliseconds <= after
    assert len(str(made)) == 26


def test_ids_of_one_process_sort_in_the_order_they_were_made():
    made = [ids.new_id() for _ in range(20_000)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    ms = [ULID.from_str(i).milliseconds for i in made]
    same = [(a, b) for a, b, m1, m2 in zip(made, made[1:], ms, ms[1:], strict=False) if m1 == m2]
    assert same  # 20,000 ids take a few milliseconds: some share one
    assert all(int(ULID.from_str(b)) == int(ULID.from_str(a)) + 1 for a, b in same)
