"""The gateway process: the MQTT adapter that drives the round engine, its wiring, observers and metrics."""
