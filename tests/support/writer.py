"""A writer process for the fault tests: records one training change every `--every`
seconds, like the catalogue would, against DATABASE_URL.

A write that fails because the database is away is retried until it commits: a change
exists once its transaction committed, so the ids printed at the end (one JSON line) are
exactly the changes that must reach the partner.

    python -m tests.support.writer --first 1 --last 60 --every 0.1 [--webhook URL]
"""

import argparse
import json
import time

import django

django.setup()

from django.db import InterfaceError, OperationalError, connection, transaction  # noqa: E402

from changes.services import change_record  # noqa: E402
from webhooks.models import Webhook  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--first", type=int, required=True)
    parser.add_argument("--last", type=int, required=True)
    parser.add_argument("--every", type=float, default=0.1)
    parser.add_argument("--webhook", action="append", default=[])
    options = parser.parse_args()
    for url in options.webhook:
        Webhook.objects.create(name=url, url=url)
    committed = []
    for object_id in range(options.first, options.last + 1):
        while True:
            try:
                with transaction.atomic():
                    change_record(object_kind="training", object_id=object_id,
                                  action="update", parent_id=1)
                break
            except (OperationalError, InterfaceError):
                connection.close()  # the server went away: reconnect on the next try
                time.sleep(0.2)
        committed.append(object_id)
        time.sleep(options.every)
    print(json.dumps({"committed": committed}), flush=True)


if __name__ == "__main__":
    main()
