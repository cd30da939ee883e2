"""How every process logs (web, commands, Celery worker and beat): one logfmt line per
record on stdout,

    time=2026-12-01T10:00:00.123Z level=info logger=springhook.deliveries event=attempt webhook=3 …

so that a logfmt parser reads each line whole, the structured events (`event=attempt`,
`event=webhook_failing`, …) and everything else alike.
"""

import json
import logging
from datetime import UTC, datetime

from core.logfmt import logfmt

# Celery writes a line for each task it receives and runs, and beat one for each task it
# sends: with a tick a second, some 120 and 60 lines a minute from an idle worker and beat;
# a worker that starts after a pause discards each expired tick with a line
# (celery.worker.request). They show at DEBUG; failures (errors) show at every level.
ROUTINE_LOGGERS = ("celery.worker.strategy", "celery.app.trace", "celery.beat",
                   "celery.worker.request")


class RoutineRefusal(logging.Filter):
    """A request with a Host this site does not serve (scanners try every address) is
    refused with a 400 and logged as one warning, without the traceback Django attaches:
    it says nothing about our code."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None
        return True


class LogfmtFormatter(logging.Formatter):
    """`time=… level=… logger=…` and the message: as it is when it is already logfmt
    (starts with `event=`), else as `event=log msg="…"`. A traceback goes in `exc="…"`,
    its line breaks escaped, so a record stays one line."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Python's warnings (a library's UserWarning, a DeprecationWarning) would go to
        # stderr as two bare lines; through logging they are one line like the rest.
        logging.captureWarnings(True)

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        prefix = (
            f"time={moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"
            f" level={record.levelname.lower()} logger={record.name}"
        )
        if record.name == "gunicorn.access" and isinstance(record.args, dict):
            return f"{prefix} {access_line(record.args)}"
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        trace = record.exc_text or (self.formatStack(record.stack_info)
                                    if record.stack_info else "")
        if message.startswith("event=") and "\n" not in message:
            line = message
            if trace:
                line += f" exc={json.dumps(trace, ensure_ascii=False)}"
        else:
            line = logfmt("log", msg=message, **({"exc": trace} if trace else {}))
        return f"{prefix} {line}"


def access_line(atoms: dict) -> str:
    """gunicorn's access record (its atoms: `m` method, `U` path, `s` status, …) as
    `event=request …`. The path comes without its query string, which may carry an
    `api_key`."""
    def atom(name: str) -> object:
        value = dict.get(atoms, name)
        return None if value in (None, "-") else value

    return logfmt(
        "request", method=atom("m"), path=atom("U"), status=atom("s"), bytes=atom("B"),
        duration=atom("L"), remote=atom("h"), agent=atom("a"),
    )


def logging_config(*, level: str) -> dict:
    """The `LOGGING` dictionary for `level` (DEBUG, INFO, …): logfmt lines on stdout.

    Django's own handlers are replaced: its `mail_admins` (a mail with the traceback, the
    request and the settings for every error, and a console dump of it with the console
    mail backend) and its DEBUG console handler. Errors are log lines like any other, one
    each; staff are mailed only about webhooks (deliveries/services/notify.py).
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"logfmt": {"()": "springhook.logs.LogfmtFormatter"}},
        "filters": {"routine_refusal": {"()": "springhook.logs.RoutineRefusal"}},
        # stdout, where container runtimes and process managers collect logs
        # (StreamHandler would pick stderr by default).
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "logfmt",
            }
        },
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {
            **{
                name: {"level": "DEBUG" if level == "DEBUG" else "WARNING"}
                for name in ROUTINE_LOGGERS
            },
            # No handler of their own: their records go to the root's stdout handler.
            "django": {"handlers": [], "level": level, "propagate": True},
            "django.security.DisallowedHost": {"filters": ["routine_refusal"]},
            # billiard, the worker's process pool ("Process … exited with 'signal 9'"),
            # logs here and turns propagation off itself: it needs the handler of its own.
            "multiprocessing": {"handlers": ["stdout"], "level": "WARNING",
                                "propagate": False},
            # gunicorn's master and workers (gunicorn.conf.py hands it this dictionary).
            "gunicorn.error": {"handlers": [], "level": level, "propagate": True},
            "gunicorn.access": {"handlers": [], "level": "INFO", "propagate": True},
        },
    }
