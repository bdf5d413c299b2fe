"""How a result reads outside Python: numbers printed by kind, and strict JSON.

Torch-free, shared by the CLI, the TUI and the exports, so a count reads ``110`` (not ``+110.0000``),
a p-value ``5.6e-89`` (not ``+0.0000``) and a missing number ``n/a`` (not ``+nan``) wherever it
shows, and every JSON document parses in any JSON reader (NaN and infinities become ``null``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

MISSING = "n/a"  # a number that is not there: a rate of no prompts, a fit of one point

_P_VALUE = re.compile(r"(^|_)p($|_)|p[-_ ]?value")
_COUNT = re.compile(r"^(n|k|count|edges?|kept|points|texts|documents|steps?|draws|averages|candidates)(_|$| )|"
                    r"(^|_)(n|count|edges|kept)$|^edges kept|^layers removed")


def strict(obj: Any) -> Any:
    """``obj`` with every NaN or infinity replaced by None and numpy scalars by Python numbers:
    what ``json.dumps(..., allow_nan=False)`` accepts."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and not isinstance(obj, (str, bytes)):  # a numpy / torch scalar
        return strict(obj.item())
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """Strict JSON text: NaN and infinities written as null (plain ``json.dumps`` writes the
    non-JSON ``NaN``, which most readers refuse)."""
    return json.dumps(strict(obj), allow_nan=False, **kwargs)


def column_kind(name: str, values: Sequence[Any] = ()) -> str:
    """How a column's numbers read: "count" (whole numbers: n, edges kept), "p" (a p-value,
    scientific), or "value" (a measured quantity, fixed decimals). A count column must hold whole
    numbers only, so a mean that happens to be named like one still prints its decimals."""
    key = name.strip().lower()
    if _P_VALUE.search(key):
        return "p"
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    whole = all(not isinstance(v, float) or not math.isfinite(v) or v.is_integer() for v in numbers)
    if _COUNT.search(key) and whole:
        return "count"
    return "value"


def number(v: Any, kind: str = "value", decimals: int = 4, sign: bool = True) -> str:
    """``v`` as text by kind: a count as a whole number, a p-value in scientific notation, any
    other float with ``decimals`` decimals (signed when ``sign``); NaN/inf/None as ``n/a``; text
    and booleans as they are."""
    if v is None:
        return MISSING
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return MISSING
    if kind == "count":
        return f"{int(v)}" if float(v).is_integer() else f"{v:.{decimals}f}"
    if isinstance(v, int):
        return str(v)
    if kind == "p":
        return "0" if v == 0 else f"{v:.2g}" if v >= 1e-3 else f"{v:.1e}"
    return f"{v:+.{decimals}f}" if sign else f"{v:.{decimals}f}"
