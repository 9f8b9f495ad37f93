"""Who is asking: principals (API keys, OIDC sessions), their scopes, and the tenant they act for."""

from gateway.auth.principal import Principal, principal_of, tenant_of

__all__ = ["Principal", "principal_of", "tenant_of"]
