"""Scale-out: a coordinator and its workers sharing one round, and tiers of gateways."""
