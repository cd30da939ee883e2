"""How every process logs (web, commands, Celery worker and beat): one logfmt line per
record on stdout,

    time=2026-12-01T10:00:00.123Z level=info logger=springhook.deliveries event=attempt webhook=3 …

so that a logfmt parser reads each line whole, the structured events (`event=attempt`,
`event=webhook_failing`, …) and everything else alike.
"""

import json
import logging
from datetime import UTC, datetime

from springhook.logfmt import logfmt

# Celery writes a line for each task it receives and runs, and beat one for each task it
# sends: with a tick a second, some 120 and 60 lines a minute from an idle worker and beat.
# They show at DEBUG; failures (errors) show at every level.
ROUTINE_LOGGERS = ("celery.worker.strategy", "celery.app.trace", "celery.beat")


class LogfmtFormatter(logging.Formatter):
    """`time=… level=… logger=…` and the message: as it is when it is already logfmt
    (starts with `event=`), else as `event=log msg="…"`. A traceback goes in `exc="…"`,
    its line breaks escaped, so a record stays one line."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        prefix = (
            f"time={moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"
            f" level={record.levelname.lower()} logger={record.name}"
        )
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


def logging_config(*, level: str) -> dict:
    """The `LOGGING` dictionary for `level` (DEBUG, INFO, …): logfmt lines on stdout."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"logfmt": {"()": "springhook.logs.LogfmtFormatter"}},
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
            name: {"level": "DEBUG" if level == "DEBUG" else "WARNING"}
            for name in ROUTINE_LOGGERS
        },
    }
