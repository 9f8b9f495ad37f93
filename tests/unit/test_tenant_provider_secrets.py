"""The admin API and CLI (one model, store/tenant_model.py) accept every provider's per-tenant secrets the store
keeps and the webhook routes read (gateway/providers/registry.py), validate their form, and answer them masked."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.providers import registry
from store import tenant_secrets
from store.tenant_model import SECRET_FIELDS, TenantChange, masked_secrets

GOOD = {
    "adyen_hmac_keys": ["44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"],
    "adyen_webhook_basic_auth": "adyen:s3cret-pass",
    "adyen_api_key": "AQEyhmfxK4PJbhVGw0m/n3Q5qf3VaY9UCJ1+XWZe9W27jmlZiv4PD4jhfNMofnLr2K5i8/0QwV1bDb7kfNy1WIxIIkxgBw==",
    "adyen_merchant_account": "PayriskECOM",
    "braintree_merchant_id": "abcd1234efgh",
    "braintree_public_key": "pub_9k2",
    "braintree_private_key": "f00dfacecafe1234",
    "paddle_webhook_secrets": ["pdl_ntfset_01abcdef_secret", "pdl_ntfset_01ghijkl_old"],
    "generic_webhook_secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
}


def test_every_provider_secret_the_registry_reads_is_settable_and_stored() -> None:
    assert set(registry.all_secret_names()) <= set(SECRET_FIELDS) <= set(tenant_secrets.NAMES)
    assert registry.list_secret_names() <= tenant_secrets.LIST_NAMES


def test_the_new_providers_secrets_are_accepted_as_secrets_not_settings() -> None:
    change = TenantChange.model_validate(GOOD)
    assert change.secret_changes() == GOOD and change.settings_changes() == {}
    shown = masked_secrets(change.secret_changes())
    assert all(GOOD[name] != shown[name] for name in GOOD)  # never answered in clear
    assert isinstance(shown["paddle_webhook_secrets"], list) and len(shown["paddle_webhook_secrets"]) == 2
    assert "f00dfacecafe1234" not in str(shown)


def test_a_secret_set_to_null_is_removed() -> None:
    assert TenantChange.model_validate({"braintree_private_key": None}).secret_changes() == {
        "braintree_private_key": None}


@pytest.mark.parametrize(("field", "value"), [
    ("adyen_hmac_keys", ["not-hex"]),
    ("adyen_hmac_keys", ["AB" * 32] * 6),  # at most 5 while rotating
    ("adyen_webhook_basic_auth", "no-colon"),
    ("paddle_webhook_secrets", ["whsec_wrongprefix"]),
    ("generic_webhook_secrets", ["pdl_ntfset_wrongprefix"]),
    ("braintree_private_key", "short"),
    ("braintree_merchant_id", "has space"),
    ("adyen_api_key", "bad\x00key123"),
])
def test_a_malformed_provider_secret_is_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as exc:
        TenantChange.model_validate({field: value})
    assert exc.value.errors()[0]["loc"][0] == field
