"""metav1.Condition bookkeeping: set a condition, keeping its transition time when unchanged.

API layer (pure functions).
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from kaito.api._meta import Condition

__all__ = ("find_condition", "is_true", "set_condition")


def find_condition(conditions: Iterable[Condition] | None, type_: str) -> Condition | None:
    """The condition of ``type_``, or None."""
    for cond in conditions or ():
        if cond.type == type_:
            return cond
    return None


def is_true(conditions: Iterable[Condition] | None, type_: str) -> bool:
    cond = find_condition(conditions, type_)
    return cond is not None and cond.status == "True"


def set_condition(conditions: Iterable[Condition] | None, new: Condition) -> tuple[Condition, ...]:
    """Return ``conditions`` with ``new`` in place of its type (appended when absent).

    ``lastTransitionTime`` only moves when the status changes, as Kubernetes' SetStatusCondition.
    """
    out = list(conditions or ())
    for i, old in enumerate(out):
        if old.type == new.type:
            if old.status == new.status:
                new = attrs.evolve(new, last_transition_time=old.last_transition_time)
            out[i] = new
            return tuple(out)
    out.append(new)
    return tuple(out)
