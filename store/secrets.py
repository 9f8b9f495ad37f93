"""Envelope encryption of tenant secrets with keys from `PAYRISK_SECRET_KEY` (`cryptography`'s AES-256-GCM).

Each secret has its own random data key (DEK); the DEK is wrapped by a key-encryption key (KEK) derived with
HKDF from one of the configured master keys. `PAYRISK_SECRET_KEY=new,old` lists the current key first and the
older ones after it: everything can still be read, new writes use the first, and `payrisk secrets rotate`
re-wraps every DEK with it (the ciphertexts themselves stay). The associated data binds a ciphertext to its
tenant and name, so a row copied to another tenant does not decrypt.

Nothing here logs, and no exception carries a plaintext.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MIN_KEY_CHARS = 32
_NONCE = 12


class SecretKeyError(Exception):
    """No usable master key, or a ciphertext that none of the configured keys opens."""


@dataclass(frozen=True, slots=True)
class Sealed:
    """One encrypted secret as stored: which KEK wrapped its DEK, the wrapped DEK and the ciphertext."""

    kek_id: str
    wrapped_dek: bytes
    ciphertext: bytes


def _derive(master: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"payrisk", info=purpose).derive(master.encode())


class Keyring:
    """The configured master keys, current first. An empty keyring can neither seal nor open."""

    def __init__(self, masters: tuple[str, ...]) -> None:
        for master in masters:
            if len(master) < MIN_KEY_CHARS:
                raise SecretKeyError(f"PAYRISK_SECRET_KEY: every key needs at least {MIN_KEY_CHARS} characters")
        self._keks = {self._kid(m): _derive(m, b"kek") for m in masters}
        self._current = self._kid(masters[0]) if masters else None
        self._session = _derive(masters[0], b"session") if masters else None

    @staticmethod
    def _kid(master: str) -> str:
        return hashlib.sha256(_derive(master, b"kid")).hexdigest()[:12]

    @property
    def configured(self) -> bool:
        return self._current is not None

    @property
    def current_id(self) -> str:
        if self._current is None:
            raise SecretKeyError("PAYRISK_SECRET_KEY is not set: secrets cannot be stored or read")
        return self._current

    def session_key(self) -> bytes:
        """The key that signs session cookies (derived from the current master key)."""
        if self._session is None:
            raise SecretKeyError("PAYRISK_SECRET_KEY is not set: sign-in sessions need it")
        return self._session

    def seal(self, tenant: str, name: str, plaintext: str) -> Sealed:
        kek_id = self.current_id
        dek = AESGCM.generate_key(bit_length=256)
        aad = f"{tenant}\x00{name}".encode()
        nonce = os.urandom(_NONCE)
        ciphertext = nonce + AESGCM(dek).encrypt(nonce, plaintext.encode(), aad)
        return Sealed(kek_id, self._wrap(kek_id, dek, aad), ciphertext)

    def open(self, tenant: str, name: str, sealed: Sealed) -> str:
        aad = f"{tenant}\x00{name}".encode()
        dek = self._unwrap(sealed, aad)
        try:
            plain = AESGCM(dek).decrypt(sealed.ciphertext[:_NONCE], sealed.ciphertext[_NONCE:], aad)
        except InvalidTag:
            raise SecretKeyError(f"secret {name!r} of tenant {tenant!r} does not decrypt (tampered?)") from None
        return plain.decode()

    def rewrap(self, tenant: str, name: str, sealed: Sealed) -> Sealed:
        """The same secret with its DEK wrapped by the current key (rotation); the ciphertext is unchanged."""
        aad = f"{tenant}\x00{name}".encode()
        return Sealed(self.current_id, self._wrap(self.current_id, self._unwrap(sealed, aad), aad), sealed.ciphertext)

    def _wrap(self, kek_id: str, dek: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + AESGCM(self._keks[kek_id]).encrypt(nonce, dek, aad + kek_id.encode())

    def _unwrap(self, sealed: Sealed, aad: bytes) -> bytes:
        kek = self._keks.get(sealed.kek_id)
        if kek is None:
            raise SecretKeyError(f"a secret was sealed with key {sealed.kek_id}, which PAYRISK_SECRET_KEY no longer "
                                 "lists (add the old key after the new one, then run `payrisk secrets rotate`)")
        try:
            return AESGCM(kek).decrypt(sealed.wrapped_dek[:_NONCE], sealed.wrapped_dek[_NONCE:],
                                       aad + sealed.kek_id.encode())
        except InvalidTag:
            raise SecretKeyError("a wrapped data key does not open (tampered?)") from None


def mask(secret: str | None) -> str | None:
    """What an answer may show of a secret: its kind and last four characters (`sk_test_…4242`)."""
    if not secret:
        return None
    if len(secret) < 16:
        return "…"
    head = secret[: secret[:12].rfind("_") + 1]  # `sk_test_`, `whsec_`, `prk_`: the kind, never key material
    return f"{head}…{secret[-4:]}"
