"""The MQTT topic layout of one federation.

    {prefix}/{federation}/hello/{client_id}   ClientHello   device -> gateway   QoS 1
    {prefix}/{federation}/status/{client_id}  ClientStatus  device -> gateway   QoS 1, retained; the will
    {prefix}/{federation}/task                RoundTask     gateway -> devices  QoS 1, retained
    {prefix}/{federation}/global/{chunk}      GlobalModel   gateway -> devices  QoS 1, retained per chunk
    {prefix}/{federation}/delta/{chunk}       GlobalModel   gateway -> devices  QoS 1, retained per chunk (1.2:
                                              the change from the previous version; docs/protocol.md 2b)
    {prefix}/{federation}/update/{client_id}  ClientUpdate  device -> gateway   QoS 1 (chunks)
    {prefix}/{federation}/ack/{client_id}     Ack           gateway -> device   QoS 1

Every payload on these topics is one chunk (see :mod:`fmfl.protocol.chunking`) of one framed message.
"""

from __future__ import annotations

from dataclasses import dataclass

from fmfl.protocol.errors import ProtocolError, Reason
from fmfl.protocol.ids import check_id

KINDS = ("hello", "status", "update", "ack")


@dataclass(frozen=True)
class Topics:
    """Topic names and subscription filters for one federation."""

    federation: str
    prefix: str = "fmfl"

    def __post_init__(self) -> None:
        check_id(self.prefix, "topic prefix")
        check_id(self.federation, "federation")

    @property
    def root(self) -> str:
        return f"{self.prefix}/{self.federation}"

    def hello(self, client_id: str) -> str:
        return f"{self.root}/hello/{check_id(client_id)}"

    def status(self, client_id: str) -> str:
        """Also the client's MQTT will topic (an offline ClientStatus, retained)."""
        return f"{self.root}/status/{check_id(client_id)}"

    def update(self, client_id: str) -> str:
        return f"{self.root}/update/{check_id(client_id)}"

    def ack(self, client_id: str) -> str:
        return f"{self.root}/ack/{check_id(client_id)}"

    @property
    def task(self) -> str:
        """The retained RoundTask."""
        return f"{self.root}/task"

    def global_model_chunk(self, index: int) -> str:
        """Where chunk ``index`` of the current GlobalModel is retained."""
        if not 0 <= index < 2**32:
            raise ValueError(f"chunk index {index} out of range")
        return f"{self.root}/global/{index}"

    @property
    def global_model(self) -> str:
        """The filter a device subscribes to for the global model (all chunks)."""
        return f"{self.root}/global/+"

    def global_delta_chunk(self, index: int) -> str:
        """Where chunk ``index`` of the current downlink delta (a GlobalModel with a base version) is retained."""
        if not 0 <= index < 2**32:
            raise ValueError(f"chunk index {index} out of range")
        return f"{self.root}/delta/{index}"

    @property
    def global_delta(self) -> str:
        """The filter a delta-capable device subscribes to for the downlink deltas (all chunks)."""
        return f"{self.root}/delta/+"

    @property
    def all_hellos(self) -> str:
        return f"{self.root}/hello/+"

    @property
    def all_status(self) -> str:
        return f"{self.root}/status/+"

    @property
    def all_updates(self) -> str:
        return f"{self.root}/update/+"

    @staticmethod
    def shared(group: str, topic_filter: str) -> str:
        """The MQTT 5 shared-subscription form ``$share/{group}/{filter}`` (workers split the stream)."""
        return f"$share/{check_id(group, 'share group')}/{topic_filter}"

    def parse(self, topic: str) -> tuple[str, str | None]:
        """``(kind, client_id or chunk index or None)`` of a topic in this federation, or ProtocolError.

        Kinds: ``hello``, ``status``, ``update``, ``ack`` (with a client id), ``task`` (None),
        ``global`` and ``delta`` (the chunk index as a string).
        """
        head = self.root + "/"
        if not topic.startswith(head):
            raise ProtocolError(Reason.INVALID_ID, f"topic {topic[:120]!r} is not under {self.root}")
        levels = topic[len(head) :].split("/")
        if levels == ["task"]:
            return "task", None
        if len(levels) == 2 and levels[0] in KINDS:
            return levels[0], check_id(levels[1])
        if len(levels) == 2 and levels[0] in ("global", "delta") and levels[1].isascii() and levels[1].isdigit():
            return levels[0], levels[1]
        raise ProtocolError(Reason.INVALID_ID, f"topic {topic[:120]!r} is not an fmfl topic")
