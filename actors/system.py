"""Create (or find) every named actor of one platform, and stop them again."""

from __future__ import annotations

from typing import Any

import ray

from actors.placement import NAMESPACE, shard_name
from settings import Settings


def actor_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """The plain-data configuration every actor receives (never live objects)."""
    return {
        "database_url": settings.database.url,
        "shards": settings.ray.shards,
        "virtual_shards": settings.ray.virtual_shards,
        "stripe_api_key": settings.stripe.api_key,
        "stripe_api_base": settings.stripe.api_base,
        "secret_keys": settings.auth.secret_keys,  # opens each tenant's own provider key (tenant_secrets)
        "providers": provider_settings(settings),  # the default tenant's Adyen / Braintree / … credentials
        "clock": "real",
        "log_level": settings.logging.level,
        "log_format": settings.logging.format,
        "gc_threshold": settings.gateway.gc_threshold,
        "notifiers": settings.ray.notifiers,
        "classifiers": settings.ray.classifiers,
        "card_update_retry_seconds": settings.recovery.card_update_retry_seconds,
        "join_window_seconds": settings.recovery.join_window_seconds,
        "classify_wait_seconds": settings.recovery.classify_wait_seconds,
        "notifier": notifier_config(settings),
        "branding": settings.branding.model_dump(),
        **extra,
    }


def notifier_config(settings: Settings) -> dict[str, Any]:
    """Where the notifier pool sends: the platform's SMTP and alert settings (a tenant's own channels win)."""
    return {"smtp_url": settings.smtp.url, "mail_from": settings.smtp.mail_from,
            "slack_webhook_url": settings.alerts.slack_webhook_url, "webhook_url": settings.alerts.webhook_url,
            "webhook_secret": settings.alerts.webhook_secret}


def provider_settings(settings: Settings) -> dict[str, Any]:
    """Plain data per registered provider: its default-tenant credentials and its API base address."""
    from gateway.providers import registry

    values: dict[str, Any] = {}
    for name in registry.NAMES:
        entry = registry.get(name)
        if entry is not None:
            group = getattr(settings, name, None)  # the provider's settings group (`settings.adyen`, …)
            values[name] = {**entry.defaults(settings), "api_base": getattr(group, "api_base", None)}
    return values


class ActorSystem:
    def __init__(self, settings: Settings, **config: Any) -> None:
        self.settings = settings
        self.config = actor_config(settings, **config)
        self.shards: list[Any] = []
        self.scheduler: Any = None
        self.outbox: Any = None
        self.monitor: Any = None
        self.classifiers: Any = None

    def start(self, run_loops: bool = True, wait: bool = True) -> None:
        """Create every actor (or find it). `wait=False` returns once they are created, before the shards answer
        (their processes start meanwhile): call `ready()` before relying on them."""
        from actors.monitor import Monitor
        from actors.outbox_worker import OutboxWorker
        from actors.scheduler import Scheduler
        from actors.shard import CustomerShard

        placement = {"resources": self.config["shard_resources"]} if self.config.get("shard_resources") else {}
        self.shards = [
            CustomerShard.options(name=shard_name(i), namespace=NAMESPACE, get_if_exists=True, **placement).remote(
                i, self.config)
            for i in range(self.settings.ray.shards)
        ]
        # with run_loops, each background actor starts its own loop when created — and again after Ray restarts it
        loops = {"scheduler": 1.0, "outbox": 1.0, "monitor": 30.0} if run_loops else {}
        self.scheduler = Scheduler.options(name="scheduler", namespace=NAMESPACE, get_if_exists=True).remote(
            {**self.config, "autostart": loops.get("scheduler")})
        self.outbox = OutboxWorker.options(name="outbox", namespace=NAMESPACE, get_if_exists=True).remote(
            {**self.config, "autostart": loops.get("outbox")})
        from actors.classifier import ClassifierPool

        provider = {k: self.config.get(k) for k in ("stripe_api_key", "stripe_api_base", "database_url", "secret_keys")}
        # tables load here: a bad file stops start
        self.classifiers = ClassifierPool(size=self.settings.ray.classifiers, provider=provider)
        self.monitor = Monitor.options(name="monitor", namespace=NAMESPACE, get_if_exists=True).remote(
            {**self.config, "autostart": loops.get("monitor")})
        if wait:
            self.ready()
        if run_loops:
            ray.get([self.scheduler.start.remote(), self.outbox.start.remote(), self.monitor.start.remote()])

    def ready(self) -> None:
        """Wait until every shard is up."""
        ray.get([s.stats.remote() for s in self.shards])

    def stop(self) -> None:
        for handle in [*self.shards, self.scheduler, self.outbox, self.monitor]:
            if handle is not None:
                ray.kill(handle, no_restart=True)
        if self.classifiers is not None:
            self.classifiers.kill()
        self.shards, self.scheduler, self.outbox, self.monitor, self.classifiers = [], None, None, None, None
