"""Reading numbers out of records, curves and study attributes: one rule for what counts as a number.

>>> number("0.5"), number(None), number(float("nan")), number("abc"), number(True)
(0.5, None, None, None, None)
>>> finite(1), finite(float("inf")), finite("x")
(True, False, False)
"""

from __future__ import annotations

import math
from typing import Any


def number(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing, not a number, a boolean or NaN (infinities stay)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def finite(value: Any) -> bool:
    """Whether ``value`` is a finite number (:func:`number` and not infinite)."""
    f = number(value)
    return f is not None and math.isfinite(f)
