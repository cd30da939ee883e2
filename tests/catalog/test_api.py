"""API keys of the Trainings API (catalog.services): stored hashed, checked, noted when used."""

import hashlib
import re
from datetime import timedelta

from catalog.models import ApiKey
from catalog.services import api_key_check, api_key_create

RAW_KEY = re.compile(r"sk_[A-Za-z0-9_-]{43}")


def test_a_key_is_stored_only_as_its_hash(db):
    api_key, raw_key = api_key_create(name="Partner")
    assert RAW_KEY.fullmatch(raw_key)
    assert api_key.prefix == raw_key[:8]
    assert api_key.key_hash == hashlib.sha256(raw_key.encode()).hexdigest()
    stored = ApiKey.objects.filter(pk=api_key.pk).values().get()
    assert all(raw_key not in str(value) for value in stored.values())
    assert api_key_create(name="Partner")[1] != raw_key


def test_last_used_at_is_written_at_most_once_a_minute(db, django_assert_num_queries):
    api_key, raw_key = api_key_create(name="Partner")
    assert api_key.last_used_at is None

    with django_assert_num_queries(2):  # the lookup and the first use
        api_key_check(raw_key=raw_key)
    first_use = ApiKey.objects.get().last_used_at
    assert first_use is not None

    with django_assert_num_queries(1):  # within the minute: read only
        api_key_check(raw_key=raw_key)
    assert ApiKey.objects.get().last_used_at == first_use

    ApiKey.objects.update(last_used_at=first_use - timedelta(minutes=2))
    with django_assert_num_queries(2):
        api_key_check(raw_key=raw_key)
    assert ApiKey.objects.get().last_used_at > first_use - timedelta(minutes=1)
