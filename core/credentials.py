"""Channel credentials encrypted at rest (Fernet: AES-128-CBC + HMAC-SHA256)."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken


class CredentialError(ValueError):
    """No key configured, or a stored secret that this key cannot open."""


def _fernet(secret_key: str) -> Fernet:
    if not secret_key:
        raise CredentialError("secret_key is not set: set SWITCHBOARD_SECRET_KEY to store credentials")
    # Fernet wants 32 url-safe base64 bytes; any secret string is stretched to that. The
    # label keeps this key apart from others derived from the same secret.
    digest = hashlib.sha256(b"switchboard/credentials\x00" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(secret_key: str, plaintext: str) -> str:
    return _fernet(secret_key).encrypt(plaintext.encode()).decode("ascii")


def unseal(secret_key: str, token: str) -> str:
    try:
        return _fernet(secret_key).decrypt(token.encode("ascii")).decode()
    except (InvalidToken, ValueError) as exc:
        raise CredentialError("stored credential does not open with this secret_key") from exc
