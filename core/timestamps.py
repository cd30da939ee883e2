"""Times from outside: a query parameter, a page position, an admin filter.

Every one is read here, into a time that every database compares: an aware datetime in
UTC, in the years 1 to 9999 there. What the databases refuse is refused here first, with
a reason, so that the edge answers 400 instead of the database answering 500: PostgreSQL
keeps no offset of 16 hours or more ("time zone displacement out of range"), and a time
near year 1 or 9999 whose offset moves it past either end has no UTC value (SQLite's
adapter raises OverflowError converting it).
"""

import re
from datetime import UTC, datetime, timedelta

# No time zone on Earth is further from UTC than this (Kiribati's +14:00; the furthest
# west is -12:00): a larger offset names no place and is taken for a mistake.
MAX_OFFSET = timedelta(hours=14)

# RFC 3339's date-time (a space may stand for the T, as RFC 3339 allows), whose offset may
# also be written without its colon. Never a date alone, which would silently mean its
# midnight, nor anything else Python's ISO 8601 reader is lenient about.
_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:?\d{2})?",
    re.ASCII,
)


class TimestampError(ValueError):
    """The text is not a date and time this project accepts; the message says why."""


def timestamp_parse(text: str) -> datetime:
    """`text`, an RFC 3339 date and time with its offset (`2026-11-29T19:49:52Z`,
    `2026-11-29 20:49:52+01:00`), as an aware datetime in UTC.

    Raises TimestampError when it is not one, has no offset, has an offset beyond
    ±14:00, or lies outside the years 1 to 9999 in UTC.
    """
    if not _DATE_TIME.fullmatch(text):
        raise TimestampError("not a date and time")
    try:
        # Python 3.11 reads "Z" and any ISO 8601 offset; RFC 3339 allows a lower-case t/z.
        value = datetime.fromisoformat(text.upper())
    except ValueError:
        raise TimestampError("not a date and time") from None
    offset = value.utcoffset()
    if offset is None:
        raise TimestampError("no UTC offset")
    if abs(offset) > MAX_OFFSET:
        raise TimestampError("a UTC offset beyond ±14:00")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise TimestampError("outside the years 1 to 9999 in UTC") from None
