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
    # Hostile feeds: each once ended in a traceback.
    (
        b'[{"reference": "A", "name": "x", "price": ' + b"9" * 5000 + b"}]",
        "record 1, field 'price': must have at most 8 digits before and 2 after the point",
    ),
    (
        b'[{"reference": "A", "name": "x"}, {"reference": ' + b"7" * 5000 + b', "name": "x"}]',
        "record 2, field 'reference': must be a string, got a number",
    ),
    (b"[" + b"9" * 5000 + b"]", "record 1: must be a JSON object, got a number"),
    (b"9" * 5000, "feed must be a JSON array of trainings, got a number"),
    (
        b'[{"reference": "A", "name": "x", "price": 0.' + b"0" * 5000 + b"1}]",
        "record 1, field 'price': must have at most 8 digits",
    ),
    ([{"reference": "A", "name": "x", "price": 1e300 * 10}], "record 1, field 'price'"),
    (
        b'[{"reference": "A", "name": "x", "price": 1e400}]',
        "record 1, field 'price': must have at most 8 digits",
    ),
    # An exponent no Decimal holds (beyond 10**18): refused like any too large number.
    (
        b'[{"reference": "A", "name": "x", "price": 1E+999999999999999999999}]',
        "record 1, field 'price': must have at most 8 digits before and 2 after the point, "
        "got 1E+999999999999999999999",
    ),
    (
        b'[{"reference": "A", "name": "x", "price": 1e-999999999999999999999}]',
        "record 1, field 'price': must have at most 8 digits",
    ),
    (
        b'[{"reference": "A", "name": "x", "price": -1E+999999999999999999999}]',
        "record 1, field 'price': must have at most 8 digits",
    ),
    (
        b'[{"reference": "A", "name": "x"}, {"reference": 1E+999999999999999999999}]',
        "record 2, field 'reference': must be a string, got a number",
    ),
    (
        b'[{"reference": "A", "name": "x", "description": 1E+9999999999999999999999}]',
        "record 1, field 'description': must be a string, got a number",
    ),
    (b"[1E+999999999999999999999]", "record 1: must be a JSON object, got a number"),
    (b"1E+999999999999999999999", "feed must be a JSON array of trainings, got a number"),
    (
        b'[{"reference": "A", "name": "x\\ud800y"}]',
        "record 1, field 'name': contains a lone surrogate escape, which is not a character "
        "(U+D800) at position 2",
    ),
    (
        b'[{"reference": "\\udfff", "name": "x"}]',
        "record 1, field 'reference': contains a lone surrogate escape",
    ),
    (
        b'[{"reference": "A", "name": "x", "description": "\\ud83d"}]',
        "record 1, field 'description': contains a lone surrogate escape",
    ),
    (
        b'[{"reference": "A", "name": "a\\u0000b"}]',
        "record 1, field 'name': contains a NUL character (U+0000) at position 2",
    ),
    (
        b'[{"reference": "A\\u0000", "name": "x"}]',
        "record 1, field 'reference': contains a NUL character",
    ),
    (
        b'[{"reference": "A", "name": "x", "description": "\\u0000"}]',
        "record 1, field 'description': contains a NUL character",
    ),
    (b'[{"reference": "A", "name": "a\x00b"}]', "record 1: is not valid JSON: Invalid control"),
    (b'[{"reference": "A", "name": "x"},]', "record 2: is not valid JSON: Expecting value"),
    (
        b'[{"reference": "A", "name": "x"}\n {"reference": "B", "name": "y"}]',
        "record 1: is not valid JSON: Expecting ',' delimiter (line 2, column 2)",
    ),
    (b"", "feed is not valid JSON: Expecting value (line 1, column 1)"),
    (
        b'[{"reference": "A", "name": "x' + b"y" * 3_000_000,
        "record 1: is not valid JSON: Unterminated string starting at (line 1, column 29)",
    ),
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


@pytest.mark.django_db(transaction=True)
def test_a_bad_record_after_thousands_of_good_ones_changes_nothing(tmp_path, institute):
    """By the bad record, batches of the good ones were written: all of it rolls back."""
    for n in range(1500):
        Training.objects.create(institute=institute, reference=f"OLD-{n}", name="Old")
    before = snapshot()
    feed = [{"reference": f"OLD-{n}", "name": "Changed"} for n in range(0, 1500, 2)]
    feed += [{"reference": f"NEW-{n}", "name": "New"} for n in range(2500)]
    feed.append({"reference": "BAD", "name": "Nul\u0000"})

    with pytest.raises(CommandError, match="record 3251, field 'name': contains a NUL"):
        run_import(tmp_path, institute.pk, feed)

    assert snapshot() == before


@pytest.mark.django_db
def test_an_unknown_institute_is_refused_and_changes_nothing(tmp_path, institute):
    before = snapshot()
    with pytest.raises(CommandError, match="institute 999999 does not exist"):
        run_import(tmp_path, 999999, [{"reference": "A", "name": "x"}])
    assert snapshot() == before


# Every kind of token a chunk boundary can cut: multi-byte UTF-8, escapes (a surrogate pair
# too), numbers with fractions and exponents, literals, whitespace and line breaks.
TRICKY_FEED = (
    '[\r\n  {"reference": "K\u00f6ln-1", "name": "Caf\u00e9 \u20ac \U0001F600",'
    ' "description": "line\\nbreak \\"quoted\\" \\u00e9 \\ud83d\\ude00", "price": 12.5},\n'
    '\t{"reference": "R-2", "name": "x", "price": 1.5e1, "description": null},'
    '{"reference":"R-3","name":"y","price":"0.99"} ,\n'
    '  {"reference": "R-4", "name": "z", "price": null}\n]\n'
).encode("utf-8")


def test_a_feed_read_in_chunks_of_any_size_gives_the_same_records(monkeypatch, settings):
    expected = [
        ("K\u00f6ln-1", "Caf\u00e9 \u20ac \U0001F600",
         'line\nbreak "quoted" \u00e9 \U0001F600', Decimal("12.50")),
        ("R-2", "x", "", Decimal("15.00")),
        ("R-3", "y", "", Decimal("0.99")),
        ("R-4", "z", "", None),
    ]
    for chunk_bytes in [*range(1, 24), 64, 1024]:
        monkeypatch.setattr("catalog.services._FEED_CHUNK_BYTES", chunk_bytes)
        records = feed_parse(TRICKY_FEED)
        got = [(r.reference, r.name, r.description, r.price) for r in records]
        assert got == expected, f"chunks of {chunk_bytes} bytes"


def json_position(feed: bytes) -> str:
    """Where the standard library's parser, reading the feed whole, sees its error."""
    with pytest.raises(json.JSONDecodeError) as error:
        json.loads(feed)
    return f"{error.value.msg} (line {error.value.lineno}, column {error.value.colno})"


@pytest.mark.parametrize(
    ("feed", "where"),
    [
        (TRICKY_FEED[:-4] + b",\n  {oops}\n]", "record 4: is not valid JSON: "),
        (TRICKY_FEED[:-3], "record 4: is not valid JSON: "),
        (TRICKY_FEED.replace(b'"x"', b'"x\\q"'), "record 2: is not valid JSON: "),
        (TRICKY_FEED + b"  x", "feed is not valid JSON: "),
    ],
    ids=["bad-key", "cut-off", "bad-escape", "extra-data"],
)
def test_errors_say_where_they_are_in_the_whole_feed_whatever_the_chunks(
    monkeypatch, settings, feed, where
):
    message = where + json_position(feed)
    for chunk_bytes in [1, 2, 3, 5, 8, 13, 1024]:
        monkeypatch.setattr("catalog.services._FEED_CHUNK_BYTES", chunk_bytes)
        with pytest.raises(FeedError) as error:
            feed_parse(feed)
        assert str(error.value) == message, f"chunks of {chunk_bytes} bytes"


def test_a_utf8_error_names_its_byte_in_the_whole_feed_whatever_the_chunks(monkeypatch):
    feed = TRICKY_FEED.replace("Caf\u00e9".encode(), b"Caf\xe9")
    for chunk_bytes in [1, 2, 3, 5, 8, 13, 1024]:
        monkeypatch.setattr("catalog.services._FEED_CHUNK_BYTES", chunk_bytes)
        with pytest.raises(FeedError, match=r"not valid UTF-8 \(byte 42: invalid continuation"):
            feed_parse(feed)


@pytest.mark.django_db
def test_a_too_large_feed_is_refused_before_parsing(settings):
    settings.IMPORT_MAX_FEED_BYTES = 100
    with pytest.raises(FeedError, match="more than the limit of 100 bytes"):
        feed_parse(b"[" + b" " * 200 + b"]")


@pytest.mark.django_db
def test_a_feed_on_standard_input_is_imported_and_refused_past_the_limit(
    institute, settings, monkeypatch
):
    import io
    import sys

    feed = json.dumps([{"reference": f"R-{n}", "name": "x", "price": "-0"} for n in range(5)])
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(feed.encode())))
    out = io.StringIO()
    call_command("import_trainings", "--institute", str(institute.pk), "-", stdout=out)
    assert "5 created" in out.getvalue()
    assert set(Training.objects.values_list("price", flat=True)) == {Decimal("0.00")}

    # A pipe has no size to check first: it is refused once it has sent more than the
    # limit, changing nothing.
    settings.IMPORT_MAX_FEED_BYTES = 100
    before = snapshot()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(feed.encode())))
    with pytest.raises(CommandError, match=r"larger than the limit of 100 bytes \(IMPORT_MAX_"):
        call_command("import_trainings", "--institute", str(institute.pk), "-")
    assert snapshot() == before


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
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=root, capture_output=True, text=True,
            env=env,
        )

    # The feed is read inside the import's transaction, so the database must be there.
    assert manage("migrate", "--verbosity", "0").returncode == 0
    created = manage(
        "shell", "--no-imports", "-c",
        "from catalog.models import Institute; print(Institute.objects.create(name='I').pk)",
    )
    path = tmp_path / "feed.json"
    path.write_text('[{"reference": "A"}]')
    result = manage("import_trainings", "--institute", created.stdout.strip(), str(path))
    assert result.returncode != 0
    assert "record 1, field 'name': is required" in result.stderr
    assert "Traceback" not in result.stderr


# --- Chunks: an import holds a chunk of the feed at a time ---------------------------------


@pytest.fixture(params=["3-records", "10-characters"])
def small_chunks(request, monkeypatch):
    """Chunks of 3 records, or of about 10 characters of text (two or three records here),
    so that a small feed crosses many chunk boundaries."""
    if request.param == "3-records":
        monkeypatch.setattr("catalog.services._IMPORT_CHUNK", 3)
    else:
        monkeypatch.setattr("catalog.services._IMPORT_CHUNK_CHARACTERS", 10)


def references(institute) -> list[str]:
    return sorted(Training.objects.filter(institute=institute).values_list("reference", flat=True))


@pytest.mark.django_db
def test_an_import_across_many_chunks_matches_the_feed(tmp_path, institute, small_chunks):
    # Existing trainings: kept unchanged, changed, and gone, spread over every chunk.
    for n in range(20):
        Training.objects.create(institute=institute, reference=f"R-{n:02d}", name=f"Name {n}")
    other = Institute.objects.create(name="Other")
    Training.objects.create(institute=other, reference="R-01", name="Other's")
    Change.objects.all().delete()
    feed = [{"reference": f"R-{n:02d}", "name": f"Name {n}"} for n in range(0, 20, 2)]
    feed += [{"reference": f"R-{n:02d}", "name": "Changed"} for n in range(1, 10, 2)]
    feed += [{"reference": f"NEW-{n}", "name": "New"} for n in range(7)]

    output = run_import(tmp_path, institute.pk, feed)

    assert "7 created, 5 updated, 10 unchanged, 5 deleted" in output
    assert references(institute) == sorted(item["reference"] for item in feed)
    assert Training.objects.get(institute=institute, reference="R-03").name == "Changed"
    assert Training.objects.filter(institute=other).count() == 1
    gone = sorted(Change.objects.filter(action="destroy").values_list("object_id", flat=True))
    assert len(gone) == 5 and not Training.objects.filter(pk__in=gone).exists()
    # Again: nothing changes, nothing is deleted.
    assert "0 created, 0 updated, 22 unchanged, 0 deleted" in run_import(
        tmp_path, institute.pk, feed
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("feed", "message"),
    [
        # In another chunk than its first use.
        ([f"A{n}" for n in range(8)] + ["A1"], "record 9, field 'reference': duplicate "
         "reference 'A1' (first used by record 2)"),
        # In the same chunk.
        (["A", "B", "A"], "record 3, field 'reference': duplicate reference 'A' (first used by "
         "record 1)"),
        # The first error wins: a duplicate before a bad record in its chunk...
        (["A", "B", "C", "D", "A", None], "record 5, field 'reference': duplicate reference "
         "'A'"),
        # ... and a bad record before a duplicate.
        (["A", "B", "C", None, "A"], "record 4, field 'reference': must be a string"),
        # Of a training that exists: named twice all the same.
        (["EXISTING", "B", "C", "D", "EXISTING"], "record 5, field 'reference': duplicate "
         "reference 'EXISTING' (first used by record 1)"),
    ],
)
def test_a_reference_used_twice_is_refused_in_any_chunk(
    tmp_path, institute, small_chunks, feed, message
):
    Training.objects.create(institute=institute, reference="EXISTING", name="Untouched")
    before = snapshot()
    records = [{"reference": reference, "name": "x"} for reference in feed]
    with pytest.raises(CommandError) as error:
        run_import(tmp_path, institute.pk, records)
    assert message in str(error.value)
    assert snapshot() == before


@pytest.mark.django_db
def test_imports_follow_each_other_in_one_transaction(institute, small_chunks):
    """The table of references read lasts one import: a failed one leaves nothing behind
    for the next, in the same connection and transaction."""
    other = Institute.objects.create(name="Other")
    records = feed_parse(json.dumps([{"reference": f"R{n}", "name": "x"} for n in range(5)]))
    assert import_run(institute_id=institute.pk, records=records).created == 5
    with pytest.raises(FeedError, match="duplicate reference 'R1'"):
        import_run(institute_id=other.pk, records=[*records, records[1]])
    assert import_run(institute_id=other.pk, records=records).created == 5
    assert import_run(institute_id=institute.pk, records=records[:2]).deleted == 3
