"""Spike detection and incidents (pure): bursts fire, steady noise stays quiet, incidents open and resolve."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from actors.domain.spikes import (
    Incident,
    Observation,
    SpikeConfig,
    alertable,
    bucket_start,
    detect_spikes,
    evaluate_incidents,
    incident_alert,
    spike_alert,
)

CONFIG = SpikeConfig(bucket_seconds=300, baseline_buckets=12, k=3.0, min_count=5, min_std=1.0)
START = datetime(2025, 3, 1, tzinfo=UTC)  # a bucket boundary
BUCKET = timedelta(seconds=300)


def observations(counts: list[int], provider: str = "stripe", category: str = "SOFT_DECLINE") -> list[Observation]:
    """`counts[i]` failures spread inside bucket i from START."""
    found = []
    for i, n in enumerate(counts):
        for j in range(n):
            at = START + BUCKET * i + timedelta(seconds=(j * 290) // max(n, 1))
            found.append(Observation(at=at, provider=provider, category=category))
    return found


def end_of(bucket_index: int) -> datetime:
    """A moment inside the last second of bucket `bucket_index` (it is the current, nearly complete bucket)."""
    return START + BUCKET * (bucket_index + 1) - timedelta(seconds=1)


def test_a_burst_after_a_steady_baseline_is_a_spike() -> None:
    counts = [3, 4, 2, 3, 5, 3, 4, 3, 2, 4, 3, 3, 30]
    spikes = detect_spikes(observations(counts), end_of(12), CONFIG)
    assert [(s.provider, s.category, s.count) for s in spikes] == [("stripe", "SOFT_DECLINE", 30)]
    spike = spikes[0]
    assert spike.bucket_start == START + BUCKET * 12 and spike.bucket_end == START + BUCKET * 13
    assert spike.baseline_mean == pytest.approx(39 / 12, abs=1e-3)
    assert spike.count >= spike.threshold > spike.baseline_mean


def test_an_ordinary_bucket_after_the_same_baseline_is_not_a_spike() -> None:
    counts = [3, 4, 2, 3, 5, 3, 4, 3, 2, 4, 3, 3, 5]
    assert detect_spikes(observations(counts), end_of(12), CONFIG) == []


def test_a_spike_in_the_last_complete_bucket_is_still_reported_after_the_bucket_ends() -> None:
    counts = [2] * 12 + [25, 0]
    spikes = detect_spikes(observations(counts), START + BUCKET * 13 + timedelta(seconds=10), CONFIG)
    assert [s.bucket_start for s in spikes] == [START + BUCKET * 12]


def test_a_small_absolute_count_never_spikes_even_from_a_silent_baseline() -> None:
    counts = [0] * 12 + [CONFIG.min_count - 1]
    assert detect_spikes(observations(counts), end_of(12), CONFIG) == []


def test_rates_are_judged_per_provider_and_category() -> None:
    noise = observations([3] * 13, provider="stripe", category="SOFT_DECLINE")
    burst = observations([0] * 12 + [12], provider="adyen", category="NETWORK_ERROR")
    spikes = detect_spikes(noise + burst, end_of(12), CONFIG)
    assert [(s.provider, s.category) for s in spikes] == [("adyen", "NETWORK_ERROR")]


def test_observations_after_now_are_not_counted() -> None:
    counts = [2] * 12 + [30]
    early = START + BUCKET * 12 + timedelta(seconds=1)  # only the first of the 30 has happened
    assert detect_spikes(observations(counts), early, CONFIG) == []


def test_buckets_are_aligned_to_the_epoch() -> None:
    assert bucket_start(START + timedelta(seconds=299), CONFIG) == START
    assert bucket_start(START + timedelta(seconds=300), CONFIG) == START + BUCKET


@settings(max_examples=200, deadline=None)
@given(low=st.integers(0, 200), data=st.data())
def test_steady_noise_within_poisson_spread_never_spikes(low: int, data: st.DataObject) -> None:
    width = math.floor(CONFIG.k * max(math.sqrt(low), CONFIG.min_std))
    counts = data.draw(st.lists(st.integers(low, low + width), min_size=13, max_size=13))
    assert detect_spikes(observations(counts), end_of(12), CONFIG) == []


@settings(max_examples=200, deadline=None)
@given(low=st.integers(0, 100), data=st.data())
def test_a_burst_well_above_any_steady_baseline_always_spikes(low: int, data: st.DataObject) -> None:
    high = data.draw(st.integers(low, low + 20))
    baseline = data.draw(st.lists(st.integers(low, high), min_size=12, max_size=12))
    burst = math.ceil(high + CONFIG.k * ((high - low) + math.sqrt(high) + CONFIG.min_std)) + CONFIG.min_count
    spikes = detect_spikes(observations([*baseline, burst]), end_of(12), CONFIG)
    assert [s.count for s in spikes] == [burst]


def config_errors(counts: list[int], provider: str = "stripe") -> list[Observation]:
    return observations(counts, provider=provider, category="CONFIG_ERROR")


def test_a_burst_of_config_errors_opens_an_incident() -> None:
    found = config_errors([0] * 12 + [4])
    changes = evaluate_incidents(found, {}, end_of(12), CONFIG)
    assert [(c.kind, c.incident.provider, c.count) for c in changes] == [("opened", "stripe", 4)]
    assert changes[0].incident.categories == ("CONFIG_ERROR",)
    assert changes[0].incident.opened_at == START + BUCKET * 12


def test_config_errors_and_rate_limits_together_form_one_incident() -> None:
    found = config_errors([0] * 12 + [2]) + observations([0] * 12 + [1], category="RATE_LIMITED")
    changes = evaluate_incidents(found, {}, end_of(12), CONFIG)
    assert len(changes) == 1 and changes[0].incident.categories == ("CONFIG_ERROR", "RATE_LIMITED")


def test_soft_declines_never_open_an_incident() -> None:
    found = observations([0] * 12 + [50], category="SOFT_DECLINE")
    assert evaluate_incidents(found, {}, end_of(12), CONFIG) == []


def opened_incident(bucket_index: int) -> Incident:
    opened = START + BUCKET * bucket_index
    return Incident(incident_id=f"stripe:{opened.isoformat()}", provider="stripe", opened_at=opened,
                    categories=("CONFIG_ERROR",))  # fmt: skip


def test_an_open_incident_stays_open_while_errors_continue_below_the_opening_threshold() -> None:
    found = config_errors([0] * 8 + [5, 1, 1, 1, 1])
    assert evaluate_incidents(found, {"stripe": opened_incident(8)}, end_of(12), CONFIG) == []


def test_an_incident_resolves_after_enough_quiet_buckets() -> None:
    found = config_errors([0] * 8 + [5, 0, 0, 0, 0])
    changes = evaluate_incidents(found, {"stripe": opened_incident(8)}, end_of(12), CONFIG)
    assert [(c.kind, c.incident.incident_id) for c in changes] == [("resolved", opened_incident(8).incident_id)]


def test_an_incident_does_not_resolve_before_the_quiet_period_has_passed() -> None:
    found = config_errors([0] * 10 + [5, 0, 0])
    assert evaluate_incidents(found, {"stripe": opened_incident(10)}, end_of(12), CONFIG) == []


def test_an_incident_without_any_recent_failures_resolves() -> None:
    assert [c.kind for c in evaluate_incidents([], {"stripe": opened_incident(0)}, end_of(12), CONFIG)] == ["resolved"]


def test_an_already_open_incident_is_not_opened_again() -> None:
    found = config_errors([0] * 12 + [9])
    assert evaluate_incidents(found, {"stripe": opened_incident(12)}, end_of(12), CONFIG) == []


def test_resolving_needs_a_threshold_below_opening() -> None:
    with pytest.raises(ValidationError, match="hysteresis"):
        SpikeConfig(open_count=3, resolve_count=3)


def test_spike_alerts_in_incident_categories_are_left_to_the_incident() -> None:
    found = config_errors([0] * 12 + [20]) + observations([1] * 12 + [20], category="SOFT_DECLINE")
    spikes = detect_spikes(found, end_of(12), CONFIG)
    assert {s.category for s in spikes} == {"CONFIG_ERROR", "SOFT_DECLINE"}
    assert [s.category for s in alertable(spikes, {"stripe"}, CONFIG)] == ["SOFT_DECLINE"]
    assert len(alertable(spikes, set(), CONFIG)) == 2


def test_alert_payloads_carry_string_fields_and_a_severity() -> None:
    spike = detect_spikes(observations([2] * 12 + [30]), end_of(12), CONFIG)[0]
    alert = spike_alert(spike, "acme", CONFIG)
    assert alert["kind"] == "spike" and alert["severity"] == "warning"
    assert alert["title"] == "Failure spike: SOFT_DECLINE on stripe"
    assert isinstance(alert["fields"], dict) and all(isinstance(v, str) for v in alert["fields"].values())
    change = evaluate_incidents(config_errors([0] * 12 + [4]), {}, end_of(12), CONFIG)[0]
    opened = incident_alert(change, "acme")
    assert opened["severity"] == "critical" and "held" in str(opened["text"])
    resolved = evaluate_incidents([], {"stripe": change.incident}, end_of(20), CONFIG)[0]
    assert incident_alert(resolved, "acme")["severity"] == "info"
