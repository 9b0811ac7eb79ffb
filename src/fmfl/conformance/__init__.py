"""The conformance kit: ``fmfl conformance`` plays the gateway against one device under test.

A device written in any language joins a federation only through MQTT and docs/protocol.md; the kit
drives it through the situations a real device meets (join, a chunked global model, selection, every
negative Ack, a withheld Ack, a new run replacing an old one, a duplicate task) and prints one PASS or
FAIL line per check with what it expected and what it saw (docs/protocol.md, "Conformance kit").

Gateway-side rules apply: numpy, paho-mqtt and ``fmfl.protocol`` only; never torch, transformers or onnx.
This module imports nothing, so registering the subcommand costs nothing.
"""
