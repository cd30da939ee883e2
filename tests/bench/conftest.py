"""Make the repository root importable (``bench`` is a top-level package).

Without Django's pytest plugin nothing else puts the root on ``sys.path`` when these
tests run as ``pytest tests/bench -p no:django``.
"""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
