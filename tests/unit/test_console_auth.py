"""The hash a sign-in with an unknown email is checked against: well-formed with the hasher's own
parameters (so the check does the full Argon2 work, as for a wrong password), matched by nothing."""

from __future__ import annotations

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
