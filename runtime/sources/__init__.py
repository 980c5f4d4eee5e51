"""Frame sources: probe capture devices, video files, image folders and the phantom sweep.

`open_source` turns a spec string into a source (not yet opened); options ride on the spec as a query
string or as keyword arguments::

    >>> from runtime.sources import open_source
    >>> with open_source("phantom:1?realtime=0&frames=2") as src:   # doctest: +SKIP
    ...     frame = src.read()                                      # Frame(image, t, index)

Source kinds register themselves (`SOURCES`); the tests sweep the registry.
"""
from __future__ import annotations

from pathlib import Path

from edge.core.errors import BadInputError, MissingFileError
from runtime.sources.base import SOURCES, Frame, Pacer, Source, register_source
from runtime.sources import phantom, opencv, folder  # noqa: F401  (registration order = match order)

__all__ = ["Frame", "Source", "SOURCES", "Pacer", "open_source", "register_source", "accepted_forms"]


def accepted_forms() -> str:
    return "; ".join(cls.forms for cls in SOURCES.values())


def _split_options(spec: str) -> tuple[str, dict[str, str]]:
    if "?" not in spec:
        return spec, {}
    base, _, query = spec.partition("?")
    opts = {}
    for item in filter(None, query.split("&")):
        key, eq, value = item.partition("=")
        if not eq:
            raise BadInputError(f"source option {item!r} in {spec!r} is not key=value")
        opts[key] = value
    return base, opts


def _convert(cls: type[Source], opts: dict) -> dict:
    out = {}
    for key, value in opts.items():
        if key not in cls.options:
            raise BadInputError(f"{cls.kind} source has no option {key!r}; it accepts "
                                f"{', '.join(cls.options) or 'none'}")
        convert = cls.options[key]
        try:
            out[key] = convert(value) if isinstance(value, str) else value
        except BadInputError as exc:
            raise BadInputError(f"{cls.kind} source option {key}: {exc}") from None
        except ValueError:
            what = {int: "an integer", float: "a number"}.get(convert, "valid")
            raise BadInputError(f"{cls.kind} source option {key}={value!r} is not {what}") from None
    return out


def open_source(spec: str, **opts) -> Source:
    """A source for `spec` (see `accepted_forms()`), configured but not opened."""
    if not isinstance(spec, str) or not spec.strip():
        raise BadInputError(f"empty source; expected one of: {accepted_forms()}")
    base, query = _split_options(spec.strip())
    for cls in SOURCES.values():
        if cls.matches(base):
            return cls.from_spec(base, **_convert(cls, {**query, **opts}))
    if "/" in base or Path(base).suffix:
        raise MissingFileError(f"source {base!r} not found; expected an existing video file or image "
                               f"folder, or one of: {accepted_forms()}")
    raise BadInputError(f"unknown source {spec!r}; expected one of: {accepted_forms()}")
