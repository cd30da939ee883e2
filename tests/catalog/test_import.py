import json
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from catalog.models import Institute, Training
from catalog.services import FeedError, feed_parse, import_run
from changes.models import Change


def run_import(tmp_path, institute_id: int, feed) -> str:
    path = tmp_path / "feed.json"
    path.write_bytes(feed if isinstance(feed, bytes) else json.dumps(feed).encode())
    from io import StringIO

    out = StringIO()
    call_command("import_trainings", "--institute", str(institute_id), str(path), stdout=out)
    return out.getvalue()


def snapshot() -> tuple:
    return (
        sorted(Training.objects.values_list("id", "institute_id", "reference", "name", "price")),
        sorted(Change.objects.values_list("id", "action", "object_kind", "object_id")),
    )


@pytest.mark.django_db
def test_import_creates_updates_and_deletes_to_match_the_feed(tmp_path, institute):
    kept = Training.objects.create(institute=institute, reference="KEEP", name="Old name")
    same = Training.objects.create(institute=institute, reference="SAME", name="Same")
    gone = Training.objects.create(institute=institute, reference="GONE", name="Gone")
    other_institute = Institute.objects.create(name="Other")
    other = Training.objects.create(institute=other_institute, reference="GONE", name="Other's")
    Change.objects.all().delete()

    output = run_import(
        tmp_path,
        institute.pk,
        [
            {"reference": "KEEP", "name": "New name", "price": "12.50"},
            {"reference": "SAME", "name": "Same"},
            {"reference": "NEW", "name": "Brand new", "description": "Fresh", "price": 99},
        ],
    )

    assert "1 created, 1 updated, 1 unchanged, 1 deleted" in output
    kept.refresh_from_db()
    assert (kept.name, kept.price) == ("New name", Decimal("12.50"))
    assert Training.objects.filter(pk=same.pk).exists()
    assert not Training.objects.filter(pk=gone.pk).exists()
    assert Training.objects.filter(pk=other.pk).exists(), "another institute's training stays"
    new = Training.objects.get(institute=institute, reference="NEW")
    assert (new.description, new.price) == ("Fresh", Decimal("99"))

    changes = list(Change.objects.order_by("id").values_list("action", "object_kind", "object_id"))
    assert changes == [("destroy", "training", gone.pk), ("import", "institute", institute.pk)]


@pytest.mark.django_db
def test_an_import_of_2000_trainings_records_exactly_one_import(tmp_path, institute):
    Change.objects.all().delete()
    feed = [{"reference": f"REF-{n}", "name": f"Training {n}"} for n in range(2000)]
    run_import(tmp_path, institute.pk, feed)
    assert Training.objects.filter(institute=institute).count() == 2000
    assert list(Change.objects.values_list("action", "object_kind", "object_id")) == [
        ("import", "institute", institute.pk)
    ]

    # Re-importing with 100 fewer trainings: still one import, plus one destroy each.
    Change.objects.all().delete()
    run_import(tmp_path, institute.pk, feed[100:])
    assert Change.objects.filter(action="import").count() == 1
    assert Change.objects.filter(action="destroy").count() == 100
    assert Change.objects.count() == 101


BAD_FEEDS = [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe[]", "not valid UTF-8"),
    ('[{"reference": "A", "name": "Caf\u00e9"}]'.encode("latin-1"), "not valid UTF-8 (byte 32"),
    ('[{"reference": "A", "name": "x"}]'.encode("utf-16"), "not valid UTF-8"),
    (b'[{"reference": "A", "name": "x"}]\x00', "not valid JSON"),
    (b'{"reference": "A", "name": "B"}', "must be a JSON array"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ([{"reference": "A", "name": "ok"}, "just a string"], "record 2: must be a JSON object"),
    ([{"reference": "A", "name": "ok"}, {"name": "no ref"}], "record 2, field 'reference'"),
    ([{"reference": "A"}], "record 1, field 'name': is required"),
    ([{"reference": "A", "name": "  "}], "record 1, field 'name': must not be empty"),
    ([{"reference": 7, "name": "x"}], "record 1, field 'reference': must be a string"),
    (
        [{"reference": "A", "name": "x"}, {"reference": "A", "name": "y"}],
        "record 2, field 'reference': duplicate reference 'A' (first used by record 1)",
    ),
    ([{"reference": "A", "name": "x", "price": "ten"}], "record 1, field 'price'"),
    ([{"reference": "A", "name": "x", "price": -1}], "record 1, field 'price'"),
    ([{"reference": "A", "name": "x", "price": 1.005}], "record 1, field 'price'"),
    ([{"reference": "A", "name": "x", "price": True}], "record 1, field 'price'"),
    ([{"reference": "A", "name": "x", "description": 5}], "record 1, field 'description'"),
    ([{"reference": "A", "name": "x", "nmae": "typo"}], "record 1, field 'nmae': unknown"),
    ([{"reference": "A", "name": "x" * 256}], "record 1, field 'name': is 256 characters"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("feed", "message"), BAD_FEEDS)
def test_a_bad_feed_is_refused_with_its_record_and_field_and_changes_nothing(
    tmp_path, institute, feed, message
):
    Training.objects.create(institute=institute, reference="EXISTING", name="Untouched")
    before = snapshot()

    with pytest.raises(CommandError) as error:
        run_import(tmp_path, institute.pk, feed)

    assert message in str(error.value)
    assert "nothing was changed" in str(error.value)
    assert snapshot() == before


@pytest.mark.django_db
def test_an_unknown_institute_is_refused_and_changes_nothing(tmp_path, institute):
    before = snapshot()
    with pytest.raises(CommandError, match="institute 999999 does not exist"):
        run_import(tmp_path, 999999, [{"reference": "A", "name": "x"}])
    assert snapshot() == before


@pytest.mark.django_db
def test_a_too_large_feed_is_refused_before_parsing(settings):
    settings.IMPORT_MAX_FEED_BYTES = 100
    with pytest.raises(FeedError, match="more than the limit of 100 bytes"):
        feed_parse(b"[" + b" " * 200 + b"]")


@pytest.mark.django_db
def test_a_huge_feed_file_is_refused_without_reading_it_whole(tmp_path, institute, settings):
    import tracemalloc

    settings.IMPORT_MAX_FEED_BYTES = 1024 * 1024
    path = tmp_path / "huge.json"
    with path.open("wb") as feed:  # 500 MB, sparse: no disk space, but read() returns it all
        feed.truncate(500 * 1024 * 1024)
    before = snapshot()
    tracemalloc.start()
    try:
        with pytest.raises(CommandError, match="larger than the limit of 1048576 bytes"):
            call_command("import_trainings", "--institute", str(institute.pk), str(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"500 MB feed file: Python memory peak {peak / 1e6:.2f} MB")
    assert peak < 20 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB"
    assert snapshot() == before


@pytest.mark.django_db(transaction=True)
def test_a_failure_in_the_middle_of_an_import_rolls_all_of_it_back(institute, monkeypatch):
    Training.objects.create(institute=institute, reference="GONE", name="Stays")
    before = snapshot()

    def failing_record(**kwargs):
        raise ConnectionError("database went away")

    monkeypatch.setattr("catalog.services.change_record", failing_record)
    with pytest.raises(ConnectionError):
        import_run(
            institute_id=institute.pk, records=feed_parse(b'[{"reference": "N", "name": "x"}]')
        )
    assert snapshot() == before


def test_the_command_exits_non_zero_with_the_message(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "feed.json"
    path.write_text('[{"reference": "A"}]')
    result = subprocess.run(
        [sys.executable, "manage.py", "import_trainings", "--institute", "1", str(path)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"},
    )
    assert result.returncode != 0
    assert "record 1, field 'name': is required" in result.stderr
