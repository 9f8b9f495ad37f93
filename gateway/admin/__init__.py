"""The admin API (`/api/admin/…`, `admin` scope): API keys, tenants, the audit trail; and forgetting a customer."""

from gateway.admin import audit, keys, privacy, tenants

ROUTES = [*keys.ROUTES, *tenants.ROUTES, *audit.ROUTES, *privacy.ROUTES]

__all__ = ["ROUTES"]
