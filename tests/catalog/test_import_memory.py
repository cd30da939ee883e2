"""An import's peak memory grows with its feed by a small, bounded multiple.

Measured as the peak RSS (ru_maxrss) of a real `manage.py import_trainings` child process
on the database the tests run on, so the measurement is the whole process: parser,
Django, the database driver. docs/operations.md gives the figures for a 50 MiB feed.
"""

import os

import pytest

from tests.support.feed_memory import MIB, feed_write, import_peak_rss
from tests.support.processes import current_database_url

FEED_MIB = 16
# Measured about 0.5 (every training created) and 1.3 (every one updated) MiB per MiB of
# feed; the import that read and held the whole feed took 6.3 and 19.2.
MAX_MIB_PER_FEED_MIB = 3


@pytest.mark.django_db(transaction=True)
def test_an_imports_peak_memory_stays_within_a_small_multiple_of_its_feed(tmp_path, institute):
    env = {
        **os.environ,
        "DATABASE_URL": current_database_url(),
        "DJANGO_DEBUG": "0",  # as in production: DEBUG would also keep every query's SQL
        "IMPORT_MAX_FEED_BYTES": str((FEED_MIB + 1) * MIB),
    }
    empty, first, second = (tmp_path / name for name in ("empty", "first", "second"))
    empty.write_text("[]")
    count = feed_write(first, mib=FEED_MIB, edition=1)
    feed_write(second, mib=FEED_MIB, edition=2)
    feed_mib = first.stat().st_size / MIB

    baseline = import_peak_rss(feed_path=empty, institute_id=institute.pk, env=env)
    created = import_peak_rss(feed_path=first, institute_id=institute.pk, env=env)
    updated = import_peak_rss(feed_path=second, institute_id=institute.pk, env=env)

    print(f"{feed_mib:.1f} MiB feed ({count} trainings): peak RSS {baseline / MIB:.0f} MiB "
          f"empty, {created / MIB:.0f} MiB creating, {updated / MIB:.0f} MiB updating")
    from catalog.models import Training

    assert Training.objects.filter(institute=institute).count() == count
    for label, peak in (("creating", created), ("updating", updated)):
        per_feed_mib = (peak - baseline) / MIB / feed_mib
        assert per_feed_mib < MAX_MIB_PER_FEED_MIB, (
            f"{label}: {per_feed_mib:.2f} MiB per MiB of feed"
        )
