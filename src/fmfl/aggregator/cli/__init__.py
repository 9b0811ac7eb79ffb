"""``fmfl aggregator`` and ``fmfl aggregator-worker``: only argparse at import time (a device loads no numpy)."""
