"""Small parsers shared by the CLI commands (not a command module: the leading underscore)."""
from __future__ import annotations

import json
import re

from edge.core.errors import BadInputError


def parse_size(text: str | None) -> tuple[int, int] | None:
    """'224x288' -> (224, 288) as (height, width); a single number means a square."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX,]\s*(\d+))?\s*", text)
    if not m or int(m.group(1)) < 16 or (m.group(2) and int(m.group(2)) < 16):
        raise BadInputError(f"--input {text!r} is not a size; expected HEIGHTxWIDTH like 224x224 "
                            f"(each at least 16)")
    h = int(m.group(1))
    return h, int(m.group(2) or h)


def parse_floats(text: str, what: str, low: float = 0.0, high: float = 1.0) -> list[float]:
    """'0.3,0.5,0.7' -> [0.3, 0.5, 0.7], each in [low, high)."""
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        vals = []
    if not vals or any(not (low <= v < high) for v in vals):
        raise BadInputError(f"{what} {text!r} is not a comma-separated list of numbers in "
                            f"[{low}, {high}); e.g. 0.3,0.5,0.7")
    return vals


def print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))
