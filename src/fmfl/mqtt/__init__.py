"""MQTT plumbing shared by the edge client and the aggregator (paho-mqtt 2.x): broker URLs,
authentication and TLS options, connecting with backoff, and a local Mosquitto for tests and the demo."""

from fmfl.mqtt.connection import (
    BrokerDown,
    BrokerRefused,
    MqttOptions,
    connect_with_backoff,
    make_client,
    parse_broker_url,
)

__all__ = ["BrokerDown", "BrokerRefused", "MqttOptions", "connect_with_backoff", "make_client", "parse_broker_url"]
