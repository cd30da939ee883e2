"""An import's peak memory stays within a small bound, whatever its feed's size or number of
records (below the limit, and but for one huge record, which is held while decoded).

Measured as the peak RSS (VmHWM) of a real `manage.py import_trainings` child process on the
database the tests run on, so the measurement is the whole process: parser, Django, the
database driver. docs/operations.md gives the figures for a 50 MiB feed and for a 64 MiB
feed of the smallest records.
"""

import os

import pytest

from tests.support.feed_memory import MIB, feed_write, import_peak_rss
from tests.support.processes import current_database_url


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("tiny", "feed_mib", "max_mib_above_empty"),
    [
        # 16 MiB of records of ~370 bytes (43,000): measured 14 MiB above the empty feed,
        # creating and updating alike; the import that read and held the whole feed took
        # 100 and 307 MiB, the one with a dictionary entry per training 16 and 22.
        (False, 16, 40),
        # 16 MiB of the smallest records (~35 bytes, 490,000): measured 11 MiB, whatever
        # the number of records; with a dictionary entry per record it took 3.9 and 9.3 MiB
        # per MiB of feed (62 and 149 MiB here).
        (True, 16, 30),
    ],
    ids=["realistic-records", "tiny-records"],
)
def test_an_imports_peak_memory_stays_within_a_small_bound_whatever_its_feed(
    tmp_path, institute, tiny, feed_mib, max_mib_above_empty
):
    env = {
        **os.environ,
        "DATABASE_URL": current_database_url(),
        "DJANGO_DEBUG": "0",  # as in production: DEBUG would also keep every query's SQL
        "IMPORT_MAX_FEED_BYTES": str((feed_mib + 1) * MIB),
    }
    empty, first, second = (tmp_path / name for name in ("empty", "first", "second"))
    empty.write_text("[]")
    count = feed_write(first, mib=feed_mib, edition=1, tiny=tiny)
    feed_write(second, mib=feed_mib, edition=2, tiny=tiny)
    size = first.stat().st_size / MIB

    baseline = import_peak_rss(feed_path=empty, institute_id=institute.pk, env=env)
    created = import_peak_rss(feed_path=first, institute_id=institute.pk, env=env)
    updated = import_peak_rss(feed_path=second, institute_id=institute.pk, env=env)

    print(f"{size:.1f} MiB feed ({count} trainings): peak RSS {baseline / MIB:.0f} MiB "
          f"empty, {created / MIB:.0f} MiB creating, {updated / MIB:.0f} MiB updating")
    from catalog.models import Training

    assert Training.objects.filter(institute=institute).count() == count
    for label, peak in (("creating", created), ("updating", updated)):
        above = (peak - baseline) / MIB
        assert above < max_mib_above_empty, f"{label}: {above:.0f} MiB above the empty feed"
