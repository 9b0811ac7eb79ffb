"""Broker URLs, client construction (auth, TLS, last will) and the first connection with backoff.

paho reconnects by itself after a connection was once established (``reconnect_delay_set``: doubling
from 1 s up to ``max_delay``); the first connection is ours to retry, with exponential backoff and full
jitter so a fleet restarted together does not hammer the broker in lockstep.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from fmfl.errors import FmflError

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"mqtt": 1883, "tcp": 1883, "mqtts": 8883, "ssl": 8883}


class BrokerDown(FmflError):
    """The broker could not be reached within the retry budget."""


class BrokerRefused(FmflError):
    """The broker answered CONNECT with a refusal that retrying will not fix (bad credentials, not authorized)."""


# CONNACK reasons (MQTT 5 codes; paho maps 3.1.1 return codes onto them) worth another attempt.
_TRANSIENT_REFUSALS = {136, 137, 159}  # server unavailable, server busy, connection rate exceeded


class _NoConnack(Exception):
    """The connection closed, or stayed silent, before the broker's CONNACK."""


@dataclass(frozen=True)
class MqttOptions:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    keepalive: int = 30
    #: MQTT 5 is needed for shared subscriptions; 3.1.1 works with every broker (amqtt included)
    mqtt5: bool = False


def parse_broker_url(url: str, **options: Any) -> MqttOptions:
    """``mqtt://host:port`` or ``mqtts://host:port`` (TLS) into options; user:password@ is honoured."""
    parsed = urlparse(url if "://" in url else f"mqtt://{url}")
    if parsed.scheme not in DEFAULT_PORTS:
        raise FmflError(f"broker URL {url!r}: scheme must be mqtt:// or mqtts://")
    if not parsed.hostname:
        raise FmflError(f"broker URL {url!r} has no host")
    try:
        port = parsed.port or DEFAULT_PORTS[parsed.scheme]
    except ValueError as exc:
        raise FmflError(f"broker URL {url!r}: bad port") from exc
    tls = parsed.scheme in ("mqtts", "ssl") or options.pop("tls", False) or bool(options.get("cafile"))
    username = options.pop("username", None) or parsed.username
    password = options.pop("password", None) or parsed.password
    return MqttOptions(host=parsed.hostname, port=port, tls=tls, username=username, password=password, **options)


def make_client(
    client_id: str,
    opts: MqttOptions,
    *,
    will: tuple[str, bytes] | None = None,
    manual_ack: bool = False,
    clean_session: bool = False,
) -> Any:
    """A paho 2.x client with a persistent session (QoS 1 messages wait for it while it is away)."""
    import paho.mqtt.client as mqtt

    kwargs: dict[str, Any] = {"client_id": client_id, "manual_ack": manual_ack}
    if opts.mqtt5:
        kwargs["protocol"] = mqtt.MQTTv5
    else:
        kwargs["protocol"] = mqtt.MQTTv311
        kwargs["clean_session"] = clean_session
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)  # type: ignore[attr-defined]
    if opts.username is not None:
        client.username_pw_set(opts.username, opts.password)
    if opts.tls:
        client.tls_set(
            ca_certs=str(opts.cafile) if opts.cafile else None,
            certfile=str(opts.certfile) if opts.certfile else None,
            keyfile=str(opts.keyfile) if opts.keyfile else None,
        )
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    # Bounded in-flight window and queue: a slow broker must not let memory grow without limit.
    client.max_inflight_messages_set(64)
    client.max_queued_messages_set(10_000)
    return client


def connect_with_backoff(
    client: Any,
    opts: MqttOptions,
    *,
    attempts: int = 8,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    sleep: Any = time.sleep,
    connack_timeout: float = 10.0,
) -> None:
    """Connect and wait for the CONNACK, retrying with exponential backoff and full jitter.

    Raises BrokerRefused at once when the broker refuses the credentials (a silent reconnect loop would
    hide that), BrokerDown after ``attempts``. The client's own ``on_connect`` still runs, in this thread.
    """
    import paho.mqtt.client as mqtt

    last: Exception | None = None
    for attempt in range(attempts):
        try:
            kwargs: dict[str, Any] = {}
            if opts.mqtt5:
                kwargs["clean_start"] = mqtt.MQTT_CLEAN_START_FIRST_ONLY
            client.connect(opts.host, opts.port, keepalive=opts.keepalive, **kwargs)
            _await_connack(client, opts, connack_timeout)
            return
        except (OSError, ValueError, _NoConnack) as exc:
            last = exc
            delay = random.uniform(0, min(max_delay, base_delay * 2**attempt))
            log.warning("broker %s:%d unreachable (%s); retry %d/%d in %.1f s",
                        opts.host, opts.port, exc, attempt + 1, attempts, delay)
            if attempt + 1 < attempts:
                sleep(delay)
    raise BrokerDown(f"cannot reach the MQTT broker at {opts.host}:{opts.port} after {attempts} attempts: {last}")


def _await_connack(client: Any, opts: MqttOptions, timeout: float) -> None:
    """Run the network loop here until the CONNACK; BrokerRefused or _NoConnack when it is not a success."""
    import paho.mqtt.client as mqtt

    reasons: list[Any] = []
    callback = client.on_connect

    def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
        reasons.append(reason)
        if callback is not None:
            callback(c, userdata, flags, reason, properties)

    client.on_connect = on_connect
    try:
        deadline = time.monotonic() + timeout
        while not reasons and time.monotonic() < deadline:
            rc = client.loop(timeout=0.1)
            if rc != mqtt.MQTT_ERR_SUCCESS and not reasons:
                raise _NoConnack(
                    f"the connection closed before the broker's CONNACK ({mqtt.error_string(rc)}; a TLS broker "
                    "that requires a client certificate does this when none, or an untrusted one, is given)"
                )
    finally:
        client.on_connect = callback
    if not reasons:
        raise _NoConnack(f"no CONNACK within {timeout:.0f} s")
    reason = reasons[0]
    if getattr(reason, "is_failure", False):
        if getattr(reason, "value", None) in _TRANSIENT_REFUSALS:
            raise _NoConnack(f"the broker refused the connection for now: {reason}")
        who = f"user {opts.username!r}" if opts.username else "no username (anonymous)"
        raise BrokerRefused(
            f"the MQTT broker at {opts.host}:{opts.port} refused the connection: {reason} ({who}; check "
            "--username/--password or the client certificate, and that this device has not been revoked)"
        )
