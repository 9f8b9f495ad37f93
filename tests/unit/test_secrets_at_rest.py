"""Envelope encryption of tenant secrets: sealed values open only for their tenant and name, survive a key
rotation, refuse tampering, and are answered masked."""

from __future__ import annotations

import pytest

from settings import ConfigError, load_settings
from store.secrets import Keyring, SecretKeyError, mask

OLD, NEW = "o" * 40, "n" * 40


def test_a_sealed_secret_opens_only_for_its_tenant_and_name() -> None:
    ring = Keyring((OLD,))
    sealed = ring.seal("acme", "stripe_api_key", "sk_test_abcdefghijklmnop")
    assert b"sk_test" not in sealed.ciphertext + sealed.wrapped_dek
    assert ring.open("acme", "stripe_api_key", sealed) == "sk_test_abcdefghijklmnop"
    with pytest.raises(SecretKeyError):
        ring.open("globex", "stripe_api_key", sealed)


def test_rotation_rewraps_with_the_new_key_and_the_old_key_can_then_go() -> None:
    sealed = Keyring((OLD,)).seal("acme", "stripe_api_key", "sk_test_abcdefghijklmnop")
    with pytest.raises(SecretKeyError, match="no longer lists"):
        Keyring((NEW,)).open("acme", "stripe_api_key", sealed)
    rewrapped = Keyring((NEW, OLD)).rewrap("acme", "stripe_api_key", sealed)
    assert rewrapped.ciphertext == sealed.ciphertext and rewrapped.kek_id != sealed.kek_id
    assert Keyring((NEW,)).open("acme", "stripe_api_key", rewrapped) == "sk_test_abcdefghijklmnop"


def test_a_tampered_ciphertext_does_not_open() -> None:
    ring = Keyring((OLD,))
    sealed = ring.seal("acme", "stripe_api_key", "sk_test_abcdefghijklmnop")
    last = bytes([sealed.ciphertext[-1] ^ 1])
    flipped = type(sealed)(sealed.kek_id, sealed.wrapped_dek, sealed.ciphertext[:-1] + last)
    with pytest.raises(SecretKeyError, match="tampered"):
        ring.open("acme", "stripe_api_key", flipped)


def test_masks_show_the_kind_and_the_last_four_only() -> None:
    assert mask("sk_test_abcdefghijklmnop") == "sk_test_…mnop"
    assert mask("whsec_abcdefghijklmnop") == "whsec_…mnop"
    assert mask("short_secret") == "…" and mask(None) is None


def test_a_short_master_key_stops_start_up_with_the_setting_named() -> None:
    with pytest.raises(ConfigError, match="PAYRISK_SECRET_KEY"):
        load_settings({"PAYRISK_SECRET_KEY": "too-short"}, dotenv=None)
    with pytest.raises(ConfigError, match="OIDC"):
        load_settings({"OIDC_ISSUER": "http://127.0.0.1:1", "OIDC_CLIENT_ID": "x"}, dotenv=None)
