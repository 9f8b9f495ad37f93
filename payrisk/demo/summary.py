"""The demo's result as data: one row per recovery approach, the integrity checks, and their text rendering.

Money is kept in minor units per currency (the population bills in several currencies, never summed across).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, computed_field

Money = dict[str, int]  # currency → minor units


class Approach(BaseModel):
    """How one approach did on the population: failed renewals, what it recovered, and how hard it tried."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    failed: int = Field(ge=0)  # invoices whose renewal charge declined
    recovered: int = Field(ge=0)  # of those, paid by a later attempt
    retries: int = Field(ge=0)  # charge attempts after the renewal's own attempt
    revenue_failed: Money
    revenue_saved: Money
    retries_after_do_not_retry: int = Field(ge=0)  # attempts on a card after a hard decline or MAC 03/21
    customer_payments: int = Field(default=0, ge=0)  # the customer paid the hosted invoice (not a retry)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def recovery_rate(self) -> float:
        return round(self.recovered / self.failed, 4) if self.failed else 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def still_open(self) -> int:
        return self.failed - self.recovered


class Deliveries(BaseModel):
    """Webhook deliveries of the run: what the simulator saw acknowledged and what PostgreSQL holds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    acknowledged: int  # answered 2xx, counted by the simulator
    stored: int  # rows in `deliveries` for the run's tenant
    applied: int  # applied to their customer's state
    ignored: int  # stored, verified, of a type the platform does not use
    quarantined: int
    pending: int  # still received or dispatched

    @property
    def settled(self) -> bool:
        """Every acknowledged delivery is stored once and has reached a final state."""
        return (
            self.acknowledged == self.stored == self.applied + self.ignored
            and self.quarantined == 0
            and self.pending == 0
        )


class Checks(BaseModel):
    """Integrity checks run at the end; `failures` names each one that did not hold."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    double_charges: int  # invoices charged successfully more than once (provider ledger)
    charges_per_attempt: dict[str, int]  # charges per idempotency key → how many keys (all must be 1)
    attempts_without_charge: int  # our attempts the provider never saw (a crash before the call)
    deliveries: Deliveries
    network_violations: dict[str, int]  # rule → cards (or attempts) breaking it
    platform_revenue_matches_ledger: bool  # InvoiceRecovered amounts == money the provider collected
    #: failed outbox ticks (emails, provider final actions): reported, but recovery does not depend on them
    outbox_errors: int = 0
    outbox_first_error: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def failures(self) -> list[str]:
        found = []
        if self.double_charges:
            found.append(f"{self.double_charges} invoice(s) charged twice")
        if any(n != 1 for n in map(int, self.charges_per_attempt)):
            found.append("an attempt's idempotency key reached the provider's ledger more than once")
        if not self.deliveries.settled:
            found.append("acknowledged deliveries are not all stored once and applied")
        found += [f"network rule broken: {rule} ({n})" for rule, n in self.network_violations.items() if n]
        if not self.platform_revenue_matches_ledger:
            found.append("recovered revenue in the event store differs from the provider's ledger")
        return found

    @computed_field  # type: ignore[prop-decorator]
    @property
    def passed(self) -> bool:
        return not self.failures


class Run(BaseModel):
    """What was simulated, and how fast."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    customers: int
    days: int
    seed: int
    model: str = "default"  # the simulator's outcome model (simulator.models)
    customer_actions: int = 0  # dunning emails a simulated customer acted on (a new card, the invoice paid)
    tenant: str
    id_namespace: str  # the simulator's id namespace, also the run id
    database: str | None  # the run's database when kept (--keep), else None (dropped at the end)
    start: str  # simulated start (ISO)
    step_hours: float
    #: how webhooks reached the gateway: "in-process" (stored and dispatched by the gateway's ingest, no HTTP)
    #: or "http" (signed POSTs, `--http`)
    delivery: str = "in-process"
    wall_seconds: float
    platform_seconds: float  # the platform part alone (baselines excluded)
    customer_days_per_second: float  # customers × days / platform_seconds
    #: wall seconds of the platform part by step phase (simulator, clock, store, apply, outbox, customers, reads,
    #: scheduler; `n_…`: how many times each ran), and outside it (startup, checks, shutdown, baselines_left: the
    #: wait for the baselines after the platform was done): where the time went, for tuning and benchmarks
    phases: dict[str, float] = Field(default_factory=dict)


class Summary(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    run: Run
    platform: Approach
    no_retry: Approach
    fixed_schedule: Approach
    #: Stripe's recommended fixed schedule, 8 tries within 14 days (days 1, 2, 4, 6, 8, 10, 12, 14)
    fixed_8_in_14: Approach | None = None
    checks: Checks


def money(amounts: Money) -> str:
    """`usd 1,234.00 · eur 99.00` (two decimals: the population's currencies all use cents)."""
    if not amounts:
        return "0"
    return " · ".join(f"{c} {v / 100:,.2f}" for c, v in sorted(amounts.items(), key=lambda kv: -kv[1]))


def render(summary: Summary) -> str:
    """The human summary: the three approaches side by side, then the checks."""
    rows = tuple(a for a in (summary.platform, summary.no_retry, summary.fixed_schedule, summary.fixed_8_in_14)
                 if a is not None)
    r = summary.run
    width = max(24, *(len(a.name) + 2 for a in rows))  # a label never runs into its amounts
    lines = [
        f"payrisk demo: {r.customers:,} customers × {r.days} days, seed {r.seed}, model {r.model}, "
        f"tenant {r.tenant}; {r.customer_actions:,} dunning emails acted on",
        f"  {r.wall_seconds:,.1f} s wall ({r.platform_seconds:,.1f} s platform, "
        f"{r.customer_days_per_second:,.0f} customer-days/s; webhooks {r.delivery})",
        "",
        f"{'':<26}{'failed':>8}{'recovered':>11}{'rate':>8}{'retries':>9}{'after stop':>12}",
        *(
            f"{a.name:<26}{a.failed:>8,}{a.recovered:>11,}{a.recovery_rate:>8.1%}{a.retries:>9,}"
            f"{a.retries_after_do_not_retry:>12,}"
            for a in rows
        ),
        "",
        "revenue saved",
        *(f"  {a.name:<{width}}{money(a.revenue_saved)}" for a in rows),
        f"  {'at risk (failed)':<{width}}{money(summary.platform.revenue_failed)}",
        "",
        *_render_checks(summary.checks),
    ]
    return "\n".join(lines)


def _render_checks(c: Checks) -> list[str]:
    d = c.deliveries
    per_attempt = ", ".join(
        f"{n} charge(s): {keys:,} keys" for n, keys in sorted(c.charges_per_attempt.items())
    )
    violations = ", ".join(f"{rule} {n}" for rule, n in c.network_violations.items())
    return [
        f"integrity: {'PASSED' if c.passed else 'FAILED'}",
        f"  double charges                {c.double_charges}",
        f"  charges per attempt           {per_attempt or 'no attempts'}",
        f"  attempts never sent           {c.attempts_without_charge}",
        f"  deliveries acknowledged       {d.acknowledged:,} (stored {d.stored:,}, applied {d.applied:,}, "
        f"not used {d.ignored:,}, quarantined {d.quarantined}, pending {d.pending})",
        f"  network-rule violations       {violations}",
        f"  revenue matches the ledger    {'yes' if c.platform_revenue_matches_ledger else 'NO'}",
        *(f"  ✗ {failure}" for failure in c.failures),
        *(
            [f"  warning: {c.outbox_errors} outbox tick(s) failed: {c.outbox_first_error}"]
            if c.outbox_errors
            else []
        ),
    ]
