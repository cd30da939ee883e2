"""The bench's fast partner lives in tests/support/fast_partner.py (tests use it too, and
tests never import the bench); this name stays for `python -m bench.partner`:

    python -m bench.partner --port 9100
"""

from tests.support.fast_partner import FastPartner, ReceivedRequest, main

__all__ = ["FastPartner", "ReceivedRequest", "main"]

if __name__ == "__main__":
    main()
