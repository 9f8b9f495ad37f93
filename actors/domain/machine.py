"""The recovery state machine of one failing invoice, declared as data (pytransitions).

One `Machine` definition is shared by every case model. Models are attached only for the duration of one
transition (add_model/remove_model are O(n) in the number of attached models), and callbacks never do I/O:
the machine only says which moves are legal; events record what happened.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from transitions import Machine, MachineError


class CaseState(StrEnum):
    HEALTHY = "healthy"
    CLASSIFYING = "classifying"  # failed; waiting briefly for the decline details to arrive
    RETRY_SCHEDULED = "retry_scheduled"
    RETRYING = "retrying"  # a charge is in flight
    AWAITING_CUSTOMER = "awaiting_customer"  # new card or authentication needed, with a deadline
    ESCALATED = "escalated"  # CONFIG_ERROR: retries held, engineering alerted
    HALTED = "halted"  # FRAUD_FLAGGED: reported and stopped
    RECOVERED = "recovered"
    EXHAUSTED = "exhausted"  # the strategy's final action was taken
    CLOSED = "closed"  # voided, uncollectible or subscription ended outside payrisk


TERMINAL = frozenset({CaseState.RECOVERED, CaseState.CLOSED, CaseState.HALTED, CaseState.EXHAUSTED})
OPEN = frozenset(set(CaseState) - TERMINAL - {CaseState.HEALTHY})


class _S:
    """Plain-string state names: transitions treats Enum members specially."""

    HEALTHY, CLASSIFYING, RETRY_SCHEDULED, RETRYING = "healthy", "classifying", "retry_scheduled", "retrying"
    AWAITING_CUSTOMER, ESCALATED, HALTED = "awaiting_customer", "escalated", "halted"
    RECOVERED, EXHAUSTED, CLOSED = "recovered", "exhausted", "closed"
    ALL = [s.value for s in CaseState]


#: every trigger the machine declares (TRANSITIONS below); the fold and the decisions name them only through this
Trigger = Literal["fail", "schedule_retry", "begin_attempt", "attempt_failed", "await_customer", "escalate", "halt",
                  "exhaust", "recover", "close"]

TRANSITIONS: list[dict[str, Any]] = [
    # not from RETRYING: while our charge is in flight, its result decides what happens next
    {"trigger": "fail", "source": [_S.HEALTHY, _S.RETRY_SCHEDULED, _S.AWAITING_CUSTOMER, _S.ESCALATED,
                                   _S.CLASSIFYING], "dest": _S.CLASSIFYING},
    {"trigger": "schedule_retry", "source": [_S.CLASSIFYING, _S.RETRY_SCHEDULED, _S.AWAITING_CUSTOMER,
                                             _S.ESCALATED], "dest": _S.RETRY_SCHEDULED,
     "conditions": ["is_retryable", "has_attempts_left"]},
    {"trigger": "begin_attempt", "source": _S.RETRY_SCHEDULED, "dest": _S.RETRYING,
     "conditions": "has_attempts_left"},
    {"trigger": "attempt_failed", "source": _S.RETRYING, "dest": _S.CLASSIFYING},
    {"trigger": "await_customer", "source": [_S.CLASSIFYING, _S.RETRY_SCHEDULED, _S.AWAITING_CUSTOMER],
     "dest": _S.AWAITING_CUSTOMER},
    {"trigger": "escalate", "source": [_S.CLASSIFYING, _S.ESCALATED], "dest": _S.ESCALATED},
    {"trigger": "halt", "source": [_S.CLASSIFYING], "dest": _S.HALTED},
    {"trigger": "exhaust", "source": [_S.CLASSIFYING, _S.RETRY_SCHEDULED, _S.AWAITING_CUSTOMER, _S.ESCALATED],
     "dest": _S.EXHAUSTED},
    {"trigger": "recover", "source": [s for s in _S.ALL if s not in (_S.RECOVERED, _S.CLOSED)],
     "dest": _S.RECOVERED},
    {"trigger": "close", "source": [s for s in _S.ALL if s not in (_S.RECOVERED, _S.CLOSED)],
     "dest": _S.CLOSED},
]

MACHINE = Machine(model=None, states=_S.ALL, transitions=TRANSITIONS, initial=_S.HEALTHY,
                  auto_transitions=False, ignore_invalid_triggers=False)


class CaseModel:
    """The transitions model of one case: its state and the facts the named conditions read."""

    def __init__(self, state: str, retryable: bool, attempts_made: int, max_attempts: int) -> None:
        self.state = state
        self.retryable = retryable
        self.attempts_made = attempts_made
        self.max_attempts = max_attempts

    def is_retryable(self) -> bool:
        return self.retryable

    def has_attempts_left(self) -> bool:
        return self.attempts_made < self.max_attempts


def move(model: CaseModel, trigger: Trigger) -> str:
    """Fire `trigger` on `model`; return the new state. Raises IllegalMove when the machine refuses.

    The machine's event is triggered on the model directly — what the `model.<trigger>()` method that
    `add_model` binds would call — without binding and unbinding every trigger, `may_` and `is_` method on each
    move (that cost ~470 µs a move, ~12 µs this way: a quarter of a shard's CPU went to it)."""
    try:
        if not MACHINE.events[trigger].trigger(model):
            raise IllegalMove(f"{trigger} refused by its conditions in state {model.state}")
        return str(model.state)
    except MachineError as exc:
        raise IllegalMove(str(exc.value)) from None


def may(model: CaseModel, trigger: Trigger) -> bool:
    """Would `trigger` be legal now (source state and conditions)? What `model.may_<trigger>()` calls."""
    return bool(MACHINE._can_trigger(model, trigger))


class IllegalMove(Exception):
    """The machine does not allow this trigger from the case's state."""
