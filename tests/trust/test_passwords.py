"""Mosquitto password hashes: our PBKDF2-SHA512 fallback against mosquitto_passwd and the real broker."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
from support.trust import Probe, make_federation

from fmfl.provision.passwords import (
    PasswordFileError,
    hash_password,
    hashed_lines,
    mosquitto_passwd_binary,
    new_password,
    verify_password,
    without_user,
)


def test_python_hash_round_trips() -> None:
    hashed = hash_password("s3cret")
    assert hashed.startswith("$7$101$")
    assert verify_password("s3cret", hashed)
    assert not verify_password("s3cret!", hashed)


def test_python_hash_matches_mosquitto_passwd(tmp_path: Path) -> None:
    """Oracle: a hash written by mosquitto_passwd verifies with our PBKDF2 and the same salt gives the same hash."""
    binary = mosquitto_passwd_binary()
    if binary is None:
        pytest.skip("mosquitto_passwd is not installed")
    path = tmp_path / "passwd"
    subprocess.run([binary, "-c", "-b", str(path), "dev-1", "pa:ss word"], check=True, capture_output=True)
    hashed = path.read_text().strip().split(":", 1)[1]
    assert verify_password("pa:ss word", hashed)
    _, _, iterations, salt, _ = hashed.split("$")
    assert hash_password("pa:ss word", salt=base64.b64decode(salt), iterations=int(iterations)) == hashed


def test_hashed_lines_with_and_without_mosquitto_passwd() -> None:
    passwords = {"aggregator": new_password(), "dev-1": new_password()}
    for use_binary in (True, False):
        lines = hashed_lines(passwords, use_mosquitto_passwd=use_binary)
        assert [line.split(":", 1)[0] for line in lines] == ["aggregator", "dev-1"]
        assert all(verify_password(passwords[u], h) for u, h in (line.split(":", 1) for line in lines))


@pytest.mark.parametrize("user", ["a:b", "", "tab\there"])
def test_user_names_that_break_the_file_are_refused(user: str) -> None:
    with pytest.raises(PasswordFileError, match="cannot go into a Mosquitto password file"):
        hashed_lines({user: "x"})


def test_mosquitto_passwd_failure_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "mosquitto_passwd"
    fake.write_text("#!/bin/sh\necho 'Error: broken' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr("fmfl.provision.passwords.mosquitto_passwd_binary", lambda: str(fake))
    with pytest.raises(PasswordFileError, match=r"mosquitto_passwd -U failed \(3\): Error: broken"):
        hashed_lines({"dev-1": "x"})


def test_without_user_drops_exactly_that_line() -> None:
    text = "aggregator:$7$a\ndev-1:$7$b\ndev-10:$7$c\n"
    assert without_user(text, "dev-1") == "aggregator:$7$a\ndev-10:$7$c\n"


def test_real_broker_accepts_the_python_hashes() -> None:
    fed = make_federation(("dev-1",), use_mosquitto_passwd=False).start()
    try:
        assert not Probe(fed.options("dev-1")).connect().is_failure
        assert str(Probe(fed.options("dev-1", password="nope")).connect()) == "Not authorized"
    finally:
        fed.cleanup()


def test_new_passwords_never_start_with_a_dash() -> None:
    # "--password -abc" would read as an option: a dash-first password broke about 1 device in 64
    passwords = [new_password() for _ in range(2000)]
    assert not any(p.startswith("-") for p in passwords)
    assert len(set(passwords)) == 2000
    assert all(len(p) == 43 for p in passwords)
    assert sum(p[0] == "_" for p in passwords) > 0  # the other 63 first characters are still drawn
