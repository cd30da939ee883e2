"""Text that every database stores.

PostgreSQL refuses NUL in text, and a lone surrogate (a JSON escape such as "\\ud800"
without its pair, or bytes decoded with `surrogateescape`) is not a character, so it has
no UTF-8 encoding and no database driver can send it. What comes from outside is checked
against this before it is written: refused where a person can fix it (a feed), replaced
where nobody can (a partner's answer).
"""

import re

NOT_STORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def text_storable(value: str) -> str:
    """`value` with every character no database stores replaced by U+FFFD."""
    return NOT_STORABLE.sub(REPLACEMENT, value)
