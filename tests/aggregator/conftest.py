"""Makes ``agg_helpers`` importable from the aggregator tests.

The suite runs with ``--import-mode=importlib``, where a test module cannot import a sibling; the
helpers (random sparse deltas, dense reference rules) are a plain module, so this folder goes on
``sys.path`` once, here.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
