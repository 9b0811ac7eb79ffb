"""fmfl.protocol imports numpy, zstandard and the standard library only (devices and gateways share it)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_protocol_imports_nothing_but_numpy_zstandard_and_the_standard_library() -> None:
    code = (
        "import sys, json, fmfl.protocol\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True).stdout)
    allowed = set(sys.stdlib_module_names) | {"numpy", "zstandard", "fmfl", "_distutils_hack"}
    foreign = [name for name in loaded if name not in allowed and not name.startswith("_")]
    assert foreign == []
