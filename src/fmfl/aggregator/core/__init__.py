"""The round core: one round as a sans-IO state machine (no sockets, no threads, no clock of its own)."""
