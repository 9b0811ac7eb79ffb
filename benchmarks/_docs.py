"""Helpers every benchmark shares: the machine's CPU model, and rewriting one section of a markdown file."""

from __future__ import annotations

from pathlib import Path


def cpu_model(default: str = "unknown CPU") -> str:
    """The ``model name`` line of /proc/cpuinfo (Linux), else ``default``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return default


def replace_section(path: Path, heading: str, section: str, title: str = "# Benchmarks") -> None:
    """Replace ``heading``'s section of ``path`` (up to the next ``## ``) with ``section``, or append it.

    Each benchmark owns one section of a shared document; the others are left byte for byte as they were.
    """
    section = section.rstrip("\n") + "\n"
    text = path.read_text() if path.exists() else title + "\n"
    start = text.find(heading + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        nxt = text.find("\n## ", start + len(heading))
        rest = text[nxt + 1 :] if nxt >= 0 else ""
        text = text[:start] + section + ("\n" + rest if rest else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
