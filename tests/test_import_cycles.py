"""No import cycles inside ``fmfl``: every module can be read, moved and tested after the ones it imports."""

from __future__ import annotations

from pathlib import Path

from support.import_graph import cycles, import_graph

import fmfl

SRC = Path(fmfl.__file__).parent


def test_fmfl_has_no_import_cycle() -> None:
    graph = import_graph(SRC, "fmfl")
    assert len(graph) > 100  # the walk found the package (a wrong root would pass vacuously)
    assert cycles(graph) == []


def test_the_checker_finds_a_cycle_hidden_behind_function_level_imports(tmp_path: Path) -> None:
    # The shape the check exists for: the aggregator and worker CLIs once imported each other inside functions.
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("def f():\n    from pkg.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def g():\n    from .a import f\n")
    (pkg / "sub" / "c.py").write_text("import pkg.sub.a\n")
    assert cycles(import_graph(pkg, "pkg")) == [["pkg.sub.a", "pkg.sub.b"]]
