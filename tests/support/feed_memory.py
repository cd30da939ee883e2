"""Peak memory of `manage.py import_trainings` on a generated feed, measured in a child process.

The peak is the child's own high-water mark of resident memory (VmHWM), so nothing of
the measuring process counts. Run it by hand for the figures in docs/operations.md:

    python tests/support/feed_memory.py 50
    python tests/support/feed_memory.py 64 --tiny

It migrates a throwaway SQLite database (or uses DATABASE_URL when given; DEBUG is off
unless DJANGO_DEBUG says otherwise, as in production), imports an empty
feed (the baseline: Python, Django and the project), then a feed of that many MiB twice:
into an empty institute (every training created) and again with every record changed
(every training updated). With `--tiny` the records are as small as a feed allows (about
35 bytes: `{"reference":"1234567","name":"1"},`), the most records a feed of that size holds —
the worst case for what grows with the number of records.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(os.environ.get("SPRINGHOOK_ROOT") or Path(__file__).resolve().parents[2])
MIB = 1024 * 1024

_DESCRIPTION = (
    "A hands-on course for people who plan and run projects: scope, stakeholders, "
    "estimates, risk and reporting, with exercises from real cases. Taught in small "
    "groups by practitioners; includes course material, lunch and a certificate — "
    "café and thé included."
)


def feed_write(path: Path, *, mib: float, edition: int = 1, tiny: bool = False) -> int:
    """Write a realistic feed of about `mib` MiB (records of ~370 bytes); return its count.

    `edition` goes into every name and price, so that a second edition changes every record.
    `tiny` writes the smallest records instead (~35 bytes, a reference and a name).
    """
    target = int(mib * MIB)
    count = 0
    with path.open("w", encoding="utf-8") as feed:
        feed.write("[\n")
        written = 2
        while written < target:
            if tiny:
                record = f'{{"reference":"{count}","name":"{edition}"}}'
            else:
                record = json.dumps(
                    {
                        "reference": f"AOT-{count:07d}",
                        "name": f"Project management in practice, group {count} ({edition})",
                        "description": _DESCRIPTION,
                        "price": f"{1000 + count % 5000 + edition}.50",
                    },
                    ensure_ascii=False,
                )
            separator = ("," if tiny else ",\n") if count else ""
            feed.write(separator + record)
            written += len(separator) + len(record.encode("utf-8"))
            count += 1
        feed.write("\n]\n")
    return count


# Runs manage.py and, however it ends, reports the process's peak resident memory. VmHWM,
# not ru_maxrss: Linux carries the high-water mark of the memory a child had before exec
# (a copy of its parent, e.g. the whole pytest process) into its ru_maxrss; VmHWM belongs
# to the memory the child has had since, its own.
_MEASURED_MANAGE = """
import runpy, sys
sys.argv = ["manage.py", *sys.argv[1:]]
try:
    runpy.run_path("manage.py", run_name="__main__")
finally:
    with open("/proc/self/status") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    print(f"peak-rss-kib {peak}", file=sys.stderr)
"""


def import_peak_rss(*, feed_path: Path, institute_id: int, env: dict[str, str]) -> int:
    """Run `manage.py import_trainings` in a child process; return its peak RSS in bytes.

    Raises RuntimeError with the child's output when the import fails.
    """
    result = subprocess.run(
        [sys.executable, "-c", _MEASURED_MANAGE, "import_trainings",
         "--institute", str(institute_id), str(feed_path)],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"import_trainings failed ({result.returncode}): {result.stderr}")
    return int(result.stderr.rsplit("peak-rss-kib ", 1)[1].split()[0]) * 1024


def _manage(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
        capture_output=True, text=True,
    ).stdout


def main(mib: float, *, tiny: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        env = {**os.environ}
        env.setdefault("DATABASE_URL", f"sqlite:///{tmp_path / 'feed.sqlite3'}")
        # As in production: with DEBUG on, Django also keeps the SQL of every query.
        env.setdefault("DJANGO_DEBUG", "0")
        env["IMPORT_MAX_FEED_BYTES"] = str(int((mib + 1) * MIB))
        _manage(env, "migrate", "--verbosity", "0")
        institute_id = int(_manage(
            env, "shell", "--no-imports", "-c",
            "from catalog.models import Institute; "
            "print(Institute.objects.create(name='Feed memory').pk)",
        ).strip())
        empty = tmp_path / "empty.json"
        empty.write_text("[]")
        first, second = tmp_path / "first.json", tmp_path / "second.json"
        count = feed_write(first, mib=mib, edition=1, tiny=tiny)
        feed_write(second, mib=mib, edition=2, tiny=tiny)
        size = first.stat().st_size / MIB

        baseline = import_peak_rss(feed_path=empty, institute_id=institute_id, env=env)
        created = import_peak_rss(feed_path=first, institute_id=institute_id, env=env)
        updated = import_peak_rss(feed_path=second, institute_id=institute_id, env=env)
        print(f"feed: {size:.1f} MiB, {count} records")
        print(f"empty feed: peak RSS {baseline / MIB:.0f} MiB")
        for label, peak in (("all created", created), ("all updated", updated)):
            print(
                f"{label}: peak RSS {peak / MIB:.0f} MiB, {(peak - baseline) / MIB:.0f} MiB "
                f"above the empty feed, {(peak - baseline) / MIB / size:.2f} MiB per MiB of feed"
            )


if __name__ == "__main__":
    arguments = [argument for argument in sys.argv[1:] if argument != "--tiny"]
    main(float(arguments[0]) if arguments else 50, tiny="--tiny" in sys.argv[1:])
