"""Passwords of HTTP Basic users: a slow salted hash (scrypt) and a cache of verifications.

A stored hash reads ``scrypt$<n>$<r>$<p>$<salt>$<key>`` (salt and key in base64), so the cost
parameters travel with each hash: raising ``SCRYPT_N`` later applies to new passwords while the
old hashes keep verifying with their own parameters.

Why a cache: one verification at n=2**15, r=8 (32 MiB) costs ~100 ms of CPU (measured on the
2-core dev box: 2**14 ~40 ms, 2**15 ~100 ms, 2**16 ~200 ms), which on every request would dwarf a
Lambda call's real work. :class:`PasswordChecker` remembers each *successful* verification in a
bounded per-process LRU, keyed by an HMAC-SHA256 of ``username:password`` under a random key made
at start-up (~2 µs; never the plaintext, useless outside this process) and holding the stored hash
it verified against. Callers still read the stored credential on every request, as for tokens, and
the KDF is skipped only while that hash is unchanged: a revoked user or a new password takes effect
on the next request on every instance. Failures are never cached, so guessing always pays the KDF.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from functools import cache

SCRYPT_N = 2**15  # CPU/memory cost: 128 * n * r bytes = 32 MiB, fits a 128 MB Lambda
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
CACHE_SIZE = 1024  # verified credentials remembered per process


def hash_password(password: str, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, n, r, p)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time comparison of the derived keys)."""
    scheme, n, r, p, salt, key = stored.split("$")
    if scheme != "scrypt":
        raise ValueError(f"Expected a scrypt password hash, got {scheme}")
    expected = base64.b64decode(key)
    derived = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p), len(expected))
    return hmac.compare_digest(derived, expected)


class PasswordChecker:
    """Verifies presented passwords against stored hashes, skipping the KDF for credentials
    already verified against the same stored hash (see the module doc)."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._key = secrets.token_bytes(32)
        self._verified: OrderedDict[bytes, str] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, username: str, password: str, stored: str | None) -> bool:
        """``stored`` is the user's stored hash, or ``None`` for an unknown user (then a dummy
        hash is verified anyway, so the answer takes as long as for a wrong password)."""
        if stored is None:
            verify_password(password, _dummy_hash())
            return False
        digest = hmac.digest(self._key, f"{username}:{password}".encode(), "sha256")
        with self._lock:
            if self._verified.get(digest) == stored:
                self._verified.move_to_end(digest)
                return True
        if not verify_password(password, stored):
            return False
        with self._lock:
            self._verified[digest] = stored
            self._verified.move_to_end(digest)
            while len(self._verified) > self._size:
                self._verified.popitem(last=False)
        return True


@cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int = KEY_BYTES) -> bytes:
    # OpenSSL needs 128 * r * (n + p + 2) bytes and refuses more than maxmem (default 32 MiB).
    maxmem = 128 * r * (n + p + 2) + 2**20
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=length)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
