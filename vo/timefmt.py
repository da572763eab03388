"""Times as the IVOA protocols write them: ISO 8601 UTC with milliseconds and ``Z``.

pyvo parses job times with astropy, which rejects ``+00:00``; DALI (section
3.3.3) allows an optional ``Z`` and fractional seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime


def format_time(value: datetime | None) -> str | None:
    """``2026-11-26T16:07:22.123Z`` for a naive-UTC or aware datetime; None stays None."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    # isoformat, not strftime("%Y"): strftime writes year 999 as "999", not "0999".
    return value.isoformat(timespec="milliseconds") + "Z"


def parse_time(text: str) -> datetime:
    """Parse a DALI/ISO 8601 timestamp into a naive UTC datetime.

    Accepts a date alone, ``T``-separated times with optional fractional
    seconds, and an optional ``Z`` or numeric offset.

    Raises
    ------
    ValueError
        When ``text`` is not such a timestamp.
    """
    value = text.strip()
    if not value:
        raise ValueError("empty timestamp")
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 timestamp "
                         "(expected e.g. 2026-11-26T12:00:00Z)") from None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:
            raise ValueError(f"{text!r} is outside the range of dates") from None
    return parsed
