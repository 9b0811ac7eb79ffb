"""The device's data layer and the data sets must not pull torch or transformers into a process."""

import subprocess
import sys


def test_imports_leave_torch_and_transformers_out() -> None:
    script = (
        "import sys\n"
        "import fmfl.datasets, fmfl.edge_client.data\n"
        "from fmfl.edge_client.data import read_local_data\n"
        "import fmfl.edge_client.data.text, fmfl.edge_client.data.images\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'onnx'))\n"
        "print(','.join(heavy))\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )

    assert result.stdout.strip() == "", f"heavy modules imported: {result.stdout.strip()}"
