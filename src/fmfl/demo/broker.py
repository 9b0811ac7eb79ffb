"""The demo's broker: a private Mosquitto when installed, else amqtt embedded in this process (MQTT 3.1.1)."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any, Protocol

from fmfl.errors import FmflError
from fmfl.mqtt.mosquitto import Mosquitto, free_port, mosquitto_binary

log = logging.getLogger(__name__)


class Broker(Protocol):
    @property
    def url(self) -> str: ...

    def stop(self) -> None: ...


class EmbeddedBroker:
    """amqtt's broker on its own asyncio loop in a daemon thread, bound to 127.0.0.1."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._loop = asyncio.new_event_loop()
        self._broker: Any = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="amqtt", daemon=True)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> EmbeddedBroker:
        try:
            from amqtt.broker import Broker as AmqttBroker
        except ImportError as exc:
            raise FmflError("no broker: install mosquitto (apt-get install mosquitto) or amqtt (pip install "
                            "'fmfl[demo]'), or pass --broker mqtt://host:port") from exc
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        self._thread.start()

        async def boot() -> Any:
            broker = AmqttBroker(config)
            await broker.start()
            return broker

        logging.getLogger("amqtt").setLevel(logging.WARNING)
        self._broker = asyncio.run_coroutine_threadsafe(boot(), self._loop).result(timeout=30)
        return self

    def stop(self) -> None:
        if self._broker is not None:
            asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(timeout=30)
            self._broker = None
        self._loop.call_soon_threadsafe(self._loop.stop)


def start_broker(workdir: Path, prefer: str = "auto") -> Broker:
    """Mosquitto on a free loopback port if installed (and not ``prefer == "amqtt"``), else amqtt."""
    if prefer != "amqtt" and mosquitto_binary() is not None:
        return Mosquitto(workdir).start()
    if prefer == "mosquitto":
        raise FmflError("mosquitto is not installed (apt-get install mosquitto)")
    log.info("mosquitto not found: starting the embedded amqtt broker (MQTT 3.1.1)")
    return EmbeddedBroker().start()
