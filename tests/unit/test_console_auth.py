"""The hash a sign-in with an unknown email is checked against: well-formed with the hasher's own
parameters (so the check does the full Argon2 work, as for a wrong password), matched by nothing."""

from __future__ import annotations

import time

import argon2
import pytest

from console import auth


def test_the_stand_in_hash_costs_what_a_real_one_costs():
    real = auth._HASHER.hash("a-real-password")
    assert argon2.extract_parameters(auth._DUMMY_HASH) == argon2.extract_parameters(real)
    assert len(auth._DUMMY_HASH.split("$")[-1]) == len(real.split("$")[-1])


def test_the_stand_in_hash_matches_no_password():
    # A mismatch, not an invalid hash: the digest was computed and compared.
    with pytest.raises(argon2.exceptions.VerifyMismatchError):
        auth._HASHER.verify(auth._DUMMY_HASH, "a-real-password")
    assert auth._check(None, "a-real-password") is False


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
