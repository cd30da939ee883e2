"""core.timestamps: the one reader of times from outside (API parameters, page positions,
admin filters) gives a UTC time every database compares, or says why not."""

from datetime import UTC, datetime

import pytest

from core.timestamps import TimestampError, timestamp_parse


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-29T19:49:52Z", datetime(2026, 11, 29, 19, 49, 52, tzinfo=UTC)),
        ("2026-11-29t19:49:52z", datetime(2026, 11, 29, 19, 49, 52, tzinfo=UTC)),
        ("2026-11-29 20:49:52+01:00", datetime(2026, 11, 29, 19, 49, 52, tzinfo=UTC)),
        ("2026-11-29T20:49:52.123456789+0100",
         datetime(2026, 11, 29, 19, 49, 52, 123456, tzinfo=UTC)),
        ("2026-11-30T09:49:52+14:00", datetime(2026, 11, 29, 19, 49, 52, tzinfo=UTC)),
        ("2026-11-29T07:49:52-12:00", datetime(2026, 11, 29, 19, 49, 52, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
        ("9999-12-31T23:59:59.999999-00:00",
         datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    ],
)
def test_a_time_with_its_offset_is_read_in_utc(text, expected):
    value = timestamp_parse(text)
    assert value == expected
    assert value.utcoffset().total_seconds() == 0


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2026-11-29T19:49:52", "no UTC offset"),
        ("2026-11-29T19:49:52+14:01", "a UTC offset beyond ±14:00"),
        ("2026-11-29T19:49:52+16:00", "a UTC offset beyond ±14:00"),
        ("2026-11-29T19:49:52-20:00", "a UTC offset beyond ±14:00"),
        ("0001-01-01T00:00:00+01:00", "outside the years 1 to 9999 in UTC"),
        ("9999-12-31T23:00:00-05:00", "outside the years 1 to 9999 in UTC"),
        ("2026-11-29", "not a date and time"),
        ("2026-11-29T19:49Z", "not a date and time"),
        ("2026-11-29T19:49:60Z", "not a date and time"),
        ("2026-13-01T00:00:00Z", "not a date and time"),
        ("2026-11-29T19:49:52\x00Z", "not a date and time"),
        ("2026-11-29T19:49:52Z trailing", "not a date and time"),
        ("２０２６-11-29T19:49:52Z", "not a date and time"),
        ("20261129T194952Z", "not a date and time"),
        ("", "not a date and time"),
    ],
)
def test_anything_else_is_refused_with_the_reason(text, reason):
    with pytest.raises(TimestampError) as error:
        timestamp_parse(text)
    assert str(error.value) == reason
