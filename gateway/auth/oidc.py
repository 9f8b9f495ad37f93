"""OpenID Connect sign-in for people: authorization code + PKCE (S256) against any standard provider.

Authlib builds the authorization request and the PKCE challenge; joserfc (Authlib's JOSE library) verifies the
ID token (signature against the provider's JWKS, issuer, audience, expiry, nonce). The pending sign-in (state →
nonce, code verifier) lives in Redis for ten minutes and is taken exactly once (GETDEL): a forged or replayed
`state` finds nothing. It is also bound to the browser that started it by a short-lived cookie. The provider
itself refuses a code used twice.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from settings import OidcRule, Settings

PENDING_TTL_SECONDS = 600
_METADATA_TTL_SECONDS = 3600.0


class SignInError(Exception):
    """The sign-in cannot complete; the message is safe to show (no token, no secret)."""


@dataclass(frozen=True, slots=True)
class Identity:
    subject: str
    email: str | None
    groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Grant:
    tenant: str
    role: str
    platform: bool


def map_identity(rules: tuple[OidcRule, ...], who: Identity) -> Grant | None:
    """The first rule that matches the person's groups or email; None: not allowed in."""
    email = (who.email or "").lower()
    for rule in rules:
        if (rule.group is not None and rule.group in who.groups) or (
                rule.email is not None and rule.email.lower() == email) or (
                rule.email_domain is not None and email.endswith("@" + rule.email_domain.lower())):
            return Grant(rule.tenant, rule.role, rule.platform)
    return None


def _key(state: str) -> str:
    return "payrisk:oidc:pending:" + hashlib.sha256(state.encode()).hexdigest()


class OidcClient:
    def __init__(self, settings: Settings) -> None:
        assert settings.auth.oidc_issuer and settings.auth.oidc_client_id
        self.issuer = settings.auth.oidc_issuer.rstrip("/")
        self.client_id = settings.auth.oidc_client_id
        self._secret = settings.auth.oidc_client_secret
        self.scopes = settings.auth.oidc_scopes
        self.groups_claim = settings.auth.oidc_groups_claim
        self.redirect_url = settings.auth.oidc_redirect_url
        self.rules = settings.auth.oidc_mapping
        self._http = httpx.AsyncClient(timeout=10.0)
        self._metadata: tuple[float, dict[str, Any]] | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None or self._metadata[0] < time.monotonic():
            answer = await self._get(f"{self.issuer}/.well-known/openid-configuration")
            if str(answer.get("issuer", "")).rstrip("/") != self.issuer:
                raise SignInError("the provider's discovery document names another issuer")
            self._metadata = (time.monotonic() + _METADATA_TTL_SECONDS, answer)
        return self._metadata[1]

    async def _get(self, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._http.get(url, **kwargs)
            response.raise_for_status()
            body: dict[str, Any] = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SignInError(f"the OpenID provider did not answer ({type(exc).__name__})") from None
        return body

    async def begin(self, redis: Any, redirect_uri: str, next_path: str) -> tuple[str, str]:
        """Start a sign-in: returns (the provider URL to send the browser to, the browser-binding value)."""
        meta = await self.metadata()
        state, nonce, verifier, binding = (generate_token(43) for _ in range(4))
        pending = {"nonce": nonce, "verifier": verifier, "redirect_uri": redirect_uri, "next": next_path,
                   "binding": hashlib.sha256(binding.encode()).hexdigest()}
        await redis.set(_key(state), orjson.dumps(pending), ex=PENDING_TTL_SECONDS)
        url = prepare_grant_uri(meta["authorization_endpoint"], self.client_id, "code", redirect_uri=redirect_uri,
                                scope=self.scopes, state=state, nonce=nonce,
                                code_challenge=create_s256_code_challenge(verifier), code_challenge_method="S256")
        return url, binding

    async def finish(self, redis: Any, state: str, code: str, binding: str | None) -> tuple[Identity, str]:
        """Complete a sign-in (once per state): returns the verified identity and where to go next."""
        raw = await redis.getdel(_key(state))
        if raw is None:
            raise SignInError("unknown or already used sign-in state; start again")
        pending = orjson.loads(raw)
        if binding is None or hashlib.sha256(binding.encode()).hexdigest() != pending["binding"]:
            raise SignInError("this sign-in was started in another browser; start again")
        tokens = await self._exchange(code, pending)
        claims = await self._verify(tokens.get("id_token"), pending["nonce"])
        claims = {**await self._userinfo(tokens, claims["sub"]), **claims}
        groups = claims.get(self.groups_claim) or ()
        identity = Identity(str(claims["sub"]), claims.get("email") if claims.get("email_verified", True) else None,
                            tuple(str(g) for g in groups) if isinstance(groups, list) else ())
        return identity, pending["next"]

    async def _exchange(self, code: str, pending: dict[str, Any]) -> dict[str, Any]:
        meta = await self.metadata()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": pending["redirect_uri"],
                "code_verifier": pending["verifier"], "client_id": self.client_id}
        auth = (self.client_id, self._secret) if self._secret else None
        try:
            response = await self._http.post(meta["token_endpoint"], data=form, auth=auth)
        except httpx.HTTPError as exc:
            raise SignInError(f"the OpenID provider did not answer ({type(exc).__name__})") from None
        if response.status_code != 200:
            error = response.json().get("error", "error") if response.headers.get("content-type", "").startswith(
                "application/json") else "error"
            raise SignInError(f"the provider refused the code ({error})")
        tokens: dict[str, Any] = response.json()
        return tokens

    async def _verify(self, id_token: Any, nonce: str) -> dict[str, Any]:
        if not isinstance(id_token, str):
            raise SignInError("the provider returned no ID token")
        meta = await self.metadata()
        keys = KeySet.import_key_set(await self._get(meta["jwks_uri"]))  # type: ignore[arg-type]
        try:
            token = jwt.decode(id_token, keys, algorithms=meta.get("id_token_signing_alg_values_supported"))
            jwt.JWTClaimsRegistry(iss={"essential": True, "value": self.issuer},
                                  aud={"essential": True, "value": self.client_id},
                                  nonce={"essential": True, "value": nonce},
                                  sub={"essential": True}, exp={"essential": True}, leeway=60).validate(token.claims)
        except (JoseError, ValueError) as exc:
            raise SignInError(f"the ID token does not verify ({type(exc).__name__})") from None
        return dict(token.claims)

    async def _userinfo(self, tokens: dict[str, Any], subject: str) -> dict[str, Any]:
        """Claims from the userinfo endpoint (many providers put email and groups only there)."""
        meta = await self.metadata()
        if not meta.get("userinfo_endpoint") or not tokens.get("access_token"):
            return {}
        info = await self._get(meta["userinfo_endpoint"],
                               headers={"Authorization": f"Bearer {tokens['access_token']}"})
        if info.get("sub") != subject:
            raise SignInError("the userinfo answer is about someone else")
        return info
