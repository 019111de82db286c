"""Credentials at rest: sealed with a key derived from secret_key, opened only with it."""

import pytest

from core.credentials import CredentialError, seal, unseal


def test_sealed_password_opens_with_the_same_key_only():
    # Any secret string works as a key; another key, or none, cannot open the token.
    token = seal("k1", "pa55 wörd")
    assert "pa55" not in token and token != seal("k1", "pa55 wörd")  # random IV per seal
    assert unseal("k1", token) == "pa55 wörd"
    with pytest.raises(CredentialError, match="does not open"):
        unseal("k2", token)
    with pytest.raises(CredentialError, match="secret_key is not set"):
        seal("", "x")
