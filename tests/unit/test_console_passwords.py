"""Console passwords: Argon2id hashes, and a miss that costs what a wrong password costs."""

import time

from console import auth


def test_a_password_verifies_against_its_hash_and_nothing_else():
    stored = auth.hash_password("correct horse")
    assert stored.startswith("$argon2id$")
    assert auth._check(stored, "correct horse") is True
    assert auth._check(stored, "correct horsf") is False
    assert auth._check("not a hash", "correct horse") is False


def test_an_unknown_user_is_refused_after_a_verify_as_long_as_a_wrong_password():
    assert auth._check(None, "anything at all") is False
    stored = auth.hash_password("correct horse")
    miss, wrong = [], []
    for _ in range(3):
        started = time.process_time()
        auth._check(None, "correct horse")
        miss.append(time.process_time() - started)
        started = time.process_time()
        auth._check(stored, "wrong horse!")
        wrong.append(time.process_time() - started)
    # Both are one Argon2id verify with the same parameters (tens of ms); a miss that skipped
    # it would take microseconds.
    assert min(miss) > 0.3 * min(wrong) and min(miss) > 0.005
