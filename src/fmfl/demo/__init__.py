"""``fmfl demo``: federated fine-tuning end to end on one machine, with real processes, a real broker and
real data, ending in a report."""
