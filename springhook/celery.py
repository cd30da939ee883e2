"""The Celery app `springhook`: workers send many webhooks' batches per task; beat ticks.

    celery -A springhook worker
    celery -A springhook beat      (exactly one; a second one only duplicates harmless ticks)
"""

import logging
import logging.config
import os
import sys
from functools import cached_property

import celery.apps.worker
from celery import Celery, signals
from celery.apps.beat import Beat
from celery.loaders.app import AppLoader

from springhook.env import EXIT_CONFIGURATION, configuration_errors_exit
from springhook.logs import logging_config

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "springhook.settings")


class SpringhookLoader(AppLoader):
    """Celery's loader, with the project's rules for starting a worker or beat."""

    def config_from_object(self, obj, silent=False):
        # The Django settings are read here, when a celery command first needs its
        # configuration: a missing or bad variable ends it with one line naming it.
        with configuration_errors_exit():
            return super().config_from_object(obj, silent=silent)

    def on_worker_init(self) -> None:
        # Runs when a worker or beat starts, before either connects to a broker.
        self.broker_required()
        super().on_worker_init()

    def broker_required(self) -> None:
        """Stop with one line unless CELERY_BROKER_URL is set: without it Celery would
        fall back to amqp://guest@localhost:5672 and use whatever listens there."""
        from django.conf import settings

        if not settings.CELERY_BROKER_URL:
            print(
                "springhook: configuration error: a Celery worker or beat needs"
                " CELERY_BROKER_URL (e.g. redis://127.0.0.1:6379/0); without a broker, run"
                " `python manage.py run_dispatcher` instead",
                file=sys.stderr, flush=True,
            )
            raise SystemExit(EXIT_CONFIGURATION)


class SpringhookBeat(Beat):
    def run(self) -> None:
        # Before Celery prints "celery beat … is starting.": a beat without a broker says
        # only what is wrong.
        self.app.loader.broker_required()
        super().run()


class SpringhookCelery(Celery):
    @cached_property
    def Beat(self):  # noqa: N802 -- Celery's name
        return self.subclass_with_self(SpringhookBeat)


def _say_as_log(message: str, f=None) -> None:
    """What the worker prints on a signal ("worker: Warm shutdown (MainProcess)", …), as
    a log line like every other instead of bare text between blank lines."""
    logging.getLogger("celery.apps.worker").info(message.strip())


celery.apps.worker.safe_say = _say_as_log

app = SpringhookCelery("springhook", loader="springhook.celery:SpringhookLoader")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.setup_logging.connect
def logging_setup(loglevel: int | str | None = None, **kwargs) -> None:
    """Worker and beat log like every other process (springhook/logs.py: one logfmt line
    per record), at their --loglevel, instead of with Celery's own format and handlers."""
    from django.conf import settings

    if isinstance(loglevel, int):
        loglevel = logging.getLevelName(loglevel)
    logging.config.dictConfig(logging_config(level=loglevel or settings.LOG_LEVEL))


@app.on_after_configure.connect
def beat_schedule(sender: Celery, **kwargs) -> None:
    # The periodic jobs' table, the one the embedded dispatcher runs too: each of its tasks
    # every period.
    from deliveries.periodic import periodic_task_periods

    for task, period in periodic_task_periods().items():
        sender.add_periodic_task(
            period, sender.signature(task), name=task,
            # A run nobody started in time is superseded by the next one.
            expires=max(period, 1.0),
        )
