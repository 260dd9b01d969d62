"""Kubernetes resource quantities (``100m``, ``1Gi``, ``2``, ``1e3``) as exact decimals.

Bottom layer (pure functions).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Final

__all__ = ("parse_quantity",)

_SUFFIXES: Final = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_QUANTITY: Final = re.compile(
    r"([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)"
)


def parse_quantity(value: object) -> Decimal:
    """Parse a quantity; raises ``ValueError`` naming the value when it is not one."""
    if isinstance(value, bool):
        raise ValueError(f"quantity {value!r} is a boolean; use a number or a string like '1Gi'")
    if isinstance(value, int | float):
        return Decimal(str(value))
    if not isinstance(value, str):
        raise ValueError(f"quantity {value!r} must be a number or a string like '500m' or '1Gi'")
    match = _QUANTITY.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"quantity {value!r} does not parse; use forms like '2', '500m', '1Gi'")
    try:
        return Decimal(match.group(1)) * _SUFFIXES[match.group(2)]
    except InvalidOperation as error:
        raise ValueError(f"quantity {value!r} does not parse: {error}") from error
