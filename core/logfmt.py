"""Structured log lines: `event=attempt webhook=3 delivery=msg_… status=200 duration=0.012`.

One `key=value` pair per fact (logfmt), so that a line is both readable and parseable by
log tools. Callers pass facts, never secrets: nothing here could tell one from the other.
"""

import json


def logfmt(event: str, **fields: object) -> str:
    """`event=<event>` followed by the fields in the order given; values with spaces, quotes
    or `=` are JSON-quoted, None is `-`."""
    parts = [f"event={event}"]
    for key, value in fields.items():
        if value is None or value == "":
            text = "-"
        elif isinstance(value, float):
            text = f"{value:.3f}"
        else:
            text = str(value)
        if any(char in text for char in ' "=\n\t'):
            text = json.dumps(text, ensure_ascii=False)
        parts.append(f"{key}={text}")
    return " ".join(parts)
