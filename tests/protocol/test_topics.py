"""Topic layout and id validation."""

from __future__ import annotations

import pytest

from fmfl.protocol import ProtocolError, Topics


def test_topic_layout() -> None:
    topics = Topics(federation="fed-1")
    assert topics.hello("dev-1") == "fmfl/fed-1/hello/dev-1"
    assert topics.status("dev-1") == "fmfl/fed-1/status/dev-1"
    assert topics.task == "fmfl/fed-1/task"
    assert topics.global_model == "fmfl/fed-1/global/+"
    assert topics.global_model_chunk(3) == "fmfl/fed-1/global/3"
    assert topics.update("dev-1") == "fmfl/fed-1/update/dev-1"
    assert topics.ack("dev-1") == "fmfl/fed-1/ack/dev-1"
    assert topics.all_hellos == "fmfl/fed-1/hello/+"
    assert topics.all_status == "fmfl/fed-1/status/+"
    assert topics.all_updates == "fmfl/fed-1/update/+"
    assert Topics.shared("aggregators", topics.all_updates) == "$share/aggregators/fmfl/fed-1/update/+"
    assert Topics("f", prefix="lab").task == "lab/f/task"


@pytest.mark.parametrize(
    ("topic", "parsed"),
    [
        ("fmfl/fed-1/update/dev-1", ("update", "dev-1")),
        ("fmfl/fed-1/hello/dev-1", ("hello", "dev-1")),
        ("fmfl/fed-1/status/dev-1", ("status", "dev-1")),
        ("fmfl/fed-1/ack/dev-1", ("ack", "dev-1")),
        ("fmfl/fed-1/task", ("task", None)),
        ("fmfl/fed-1/global/12", ("global", "12")),
    ],
)
def test_parse_routes_topics(topic: str, parsed: tuple[str, str | None]) -> None:
    assert Topics("fed-1").parse(topic) == parsed


@pytest.mark.parametrize(
    "topic",
    ["fmfl/other/update/dev-1", "fmfl/fed-1/update/a/b", "fmfl/fed-1/unknown/x", "fmfl/fed-1/global/x",
     "fmfl/fed-1/update/+", "fmfl/fed-1", "fmfl/fed-1/task/extra"],
)  # fmt: skip
def test_parse_rejects_foreign_topics(topic: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        Topics("fed-1").parse(topic)
    assert caught.value.reason == "invalid_id"


@pytest.mark.parametrize(
    "client_id", ["", "a/b", "+", "#", "dev+1", "$sys", "-dev", "d" * 65, "dév", "a b", "a\x00b", None, 7]
)
def test_bad_client_ids_are_rejected(client_id: object) -> None:
    with pytest.raises(ProtocolError) as caught:
        Topics("fed-1").update(client_id)  # type: ignore[arg-type]
    assert caught.value.reason == "invalid_id"


def test_bad_federation_prefix_and_group_are_rejected() -> None:
    for build in (lambda: Topics("a/b"), lambda: Topics("f", prefix="#"), lambda: Topics.shared("g/1", "x")):
        with pytest.raises(ProtocolError) as caught:
            build()
        assert caught.value.reason == "invalid_id"


def test_chunk_index_range() -> None:
    with pytest.raises(ValueError, match="chunk index"):
        Topics("f").global_model_chunk(-1)
