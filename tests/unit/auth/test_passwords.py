"""Password hashes and the cache of verifications (``passwords.py``), in-process."""

from __future__ import annotations

import time

from chroma_serverless.auth.passwords import (
    SCRYPT_N,
    PasswordChecker,
    hash_password,
    verify_password,
)


def test_a_hash_is_salted_scrypt_carrying_its_parameters() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first.startswith(f"scrypt${SCRYPT_N}$8$1$")
    assert first != second  # a fresh salt each time
    assert "correct horse" not in first
    assert verify_password("correct horse", first) and verify_password("correct horse", second)
    assert not verify_password("correct horsE", first)


def test_hashes_made_with_other_parameters_keep_verifying() -> None:
    """Raising the cost later must not lock out users whose hashes predate it."""
    cheap = hash_password("pässword", n=2**10, r=4, p=2)
    assert cheap.startswith("scrypt$1024$4$2$")
    assert verify_password("pässword", cheap)
    assert not verify_password("password", cheap)


def test_checker_skips_the_kdf_only_for_the_same_credentials_and_stored_hash() -> None:
    checker = PasswordChecker()
    stored = hash_password("pw-one-long")
    started = time.perf_counter()
    assert checker.check("bob", "pw-one-long", stored)
    first = time.perf_counter() - started
    started = time.perf_counter()
    assert checker.check("bob", "pw-one-long", stored)
    assert time.perf_counter() - started < first / 10  # answered from the cache
    assert not checker.check("bob", "pw-two-long", stored)
    # The user was re-created with another password: the cached success no longer applies.
    assert not checker.check("bob", "pw-one-long", hash_password("pw-two-long"))
    assert not checker.check("bob", "pw-one-long", None)  # unknown (e.g. revoked) user


def test_checker_forgets_the_least_recently_used_beyond_its_size() -> None:
    checker = PasswordChecker(size=2)
    stored = {user: hash_password(f"{user}-password", n=2**10) for user in ("a", "b", "c")}
    for user in ("a", "b", "a", "c"):  # "b" is now the least recently used
        assert checker.check(user, f"{user}-password", stored[user])
    remembered = checker._verified.values()
    assert sorted(remembered) == sorted([stored["a"], stored["c"]])
