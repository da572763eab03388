"""Job parameters: from UWS strings to typed values, checked against the job's JSON Schema.

One declaration per parameter, the property of ``schemas/{jobtype}.json``:
its type coerces the strings a UWS client sends (repeated parameters make an
array), ``default`` fills what was not given, and the schema's constraints are
checked with ``jsonschema``.  The same code runs when a job is posted (a
clear 400) and again when it starts (ERROR with the reason).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema

#: Parameters UWS itself defines; they never reach a job's schema.
RESERVED = frozenset({"phase", "runid", "executionduration", "destruction", "action", "wait",
                      "last", "after", "request", "version", "responseformat", "from_job"})

_TRUE = {"true", "t", "yes", "y", "1", "on"}
_FALSE = {"false", "f", "no", "n", "0", "off"}


class ParameterError(ValueError):
    """A parameter value that the job's schema does not accept."""


def _coerce_scalar(name: str, value: str, spec: Mapping[str, Any]) -> Any:
    kind = spec.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    text = value.strip()
    try:
        if kind == "integer":
            number = float(text)
            if not number.is_integer():
                raise ValueError
            return int(number)
        if kind == "number":
            number = float(text)
            if not math.isfinite(number):
                raise ValueError
            return number
    except ValueError:
        expected = "an integer" if kind == "integer" else "a number"
        raise ParameterError(f"parameter '{name}': {value!r} is not {expected}") from None
    if kind == "boolean":
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ParameterError(f"parameter '{name}': {value!r} is not a boolean (true or false)")
    return value


def coerce(schema: Mapping[str, Any], raw: Iterable[tuple[str, str, bool]],
           *, reference_root: Path | None = None) -> dict[str, Any]:
    """Turn UWS parameter strings into typed values, defaults included.

    Parameters
    ----------
    schema : mapping
        The job type's JSON Schema (an object schema).
    raw : iterable of (name, value, by_reference)
        Parameters as stored; names are already lower case.
    reference_root : pathlib.Path, optional
        Folder of files uploaded by reference; a by-reference value names a
        file there.  Array properties read one value per line from it.

    Raises
    ------
    ParameterError
        For an unknown name, a value of the wrong type, or a scalar given twice.
    """
    properties: Mapping[str, Any] = schema.get("properties", {})
    values: dict[str, Any] = {}
    for name, value, by_reference in raw:
        spec = properties.get(name)
        if spec is None:
            known = ", ".join(sorted(properties)) or "none"
            raise ParameterError(f"unknown parameter '{name}' (this job type takes: {known})")
        items: list[str] = [value]
        if by_reference and reference_root is not None:
            path = reference_root / Path(value).name
            if spec.get("type") == "array":
                items = [line for line in path.read_text().splitlines() if line.strip()]
            elif spec.get("format") == "x-file":
                items = [str(path)]
            else:
                items = [path.read_text().strip()]
        if spec.get("type") == "array":
            item_spec = spec.get("items", {})
            values.setdefault(name, []).extend(
                _coerce_scalar(name, item, item_spec) for item in items)
        else:
            if name in values:
                raise ParameterError(f"parameter '{name}' was given more than once")
            values[name] = _coerce_scalar(name, items[0], spec)
    for name, spec in properties.items():
        if name not in values and "default" in spec:
            values[name] = spec["default"]
    return values


_validators: dict[int, tuple[Mapping[str, Any], jsonschema.Draft202012Validator]] = {}


def _validator(schema: Mapping[str, Any]) -> jsonschema.Draft202012Validator:
    # Schemas are loaded once per process; building a validator per request is not free.
    cached = _validators.get(id(schema))
    if cached is None or cached[0] is not schema:
        cached = (schema, jsonschema.Draft202012Validator(schema))
        _validators[id(schema)] = cached
    return cached[1]


def validate(schema: Mapping[str, Any], values: Mapping[str, Any]) -> None:
    """Check typed values against the schema; raise :class:`ParameterError` with the reason."""
    validator = _validator(schema)
    errors = sorted(validator.iter_errors(dict(values)), key=lambda e: list(e.path))
    if errors:
        messages = []
        for error in errors[:5]:
            where = ".".join(str(p) for p in error.path)
            messages.append(f"parameter '{where}': {error.message}" if where else error.message)
        raise ParameterError("; ".join(messages))


def parse(schema: Mapping[str, Any], raw: Iterable[tuple[str, str, bool]],
          *, reference_root: Path | None = None) -> dict[str, Any]:
    """Coerce and validate in one step."""
    values = coerce(schema, raw, reference_root=reference_root)
    validate(schema, values)
    return values
