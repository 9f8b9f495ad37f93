"""Stripe-shaped API errors: `{"error": {...}}` with the HTTP status the `stripe` SDK maps to its exceptions.

402 → CardError, 400/404 → InvalidRequestError (IdempotencyError when `type=idempotency_error`),
401 → AuthenticationError, 429 → RateLimitError, 5xx → APIError.
"""

from __future__ import annotations

from typing import Any


class StripeApiError(Exception):
    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(error.get("message", ""))
        self.status = status
        self.error = {key: value for key, value in error.items() if value is not None}

    def body(self) -> dict[str, Any]:
        return {"error": self.error}


def invalid_request(message: str, *, code: str | None = None, param: str | None = None) -> StripeApiError:
    return StripeApiError(400, {"type": "invalid_request_error", "message": message, "code": code, "param": param})


def missing(kind: str, object_id: str, param: str = "id") -> StripeApiError:
    return StripeApiError(
        404,
        {
            "type": "invalid_request_error",
            "code": "resource_missing",
            "param": param,
            "message": f"No such {kind}: '{object_id}'",
            "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
        },
    )


def invalid_api_key(key: str) -> StripeApiError:
    shown = f"{key[:8]}***{key[-4:]}" if len(key) > 12 else "***"
    return StripeApiError(
        401,
        {"type": "invalid_request_error", "code": "invalid_api_key", "message": f"Invalid API Key provided: {shown}"},
    )


def idempotency_mismatch(key: str) -> StripeApiError:
    return StripeApiError(
        400,
        {
            "type": "idempotency_error",
            "message": (
                f"Keys for idempotent requests can only be used with the same parameters they were first used with. "
                f"Try using a key other than '{key}' if you meant to execute a different request."
            ),
        },
    )


def rate_limited() -> StripeApiError:
    return StripeApiError(
        429,
        {
            "type": "invalid_request_error",
            "code": "rate_limit",
            "message": (
                "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits."
            ),
        },
    )


def api_error() -> StripeApiError:
    return StripeApiError(
        500, {"type": "api_error", "message": ("An unknown error occurred while processing your request (simulated).")}
    )
