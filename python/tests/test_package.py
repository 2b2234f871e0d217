"""The wheel as a user installs it: its metadata, its type information, and sources that CPython
3.9 (the oldest the abi3 wheel is built for) can run."""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import ebadge

PACKAGE = Path(ebadge.__file__).parent
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_the_wheel_carries_its_metadata() -> None:
    meta = importlib.metadata.metadata("ebadge")
    assert meta["Name"] == "ebadge"
    assert meta["Version"] == ebadge.__version__
    assert meta["Requires-Python"] == ">=3.9"
    assert "Apache-2.0" in (meta["License"] or meta["License-Expression"] or "")
    assert "D3.1.3" in meta["Summary"]
    classifiers = meta.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert "Programming Language :: Python :: 3.9" in classifiers


def test_the_wheel_carries_its_type_information() -> None:
    assert (PACKAGE / "py.typed").exists()
    assert (PACKAGE / "_core.pyi").exists()
    files = {p.name for p in PACKAGE.iterdir()}
    assert any(name.startswith("_core.") and name.endswith(".so") for name in files), files
    assert any(name.endswith("abi3.so") for name in files), "one module for every CPython from 3.9"


def test_the_python_sources_are_python_3_9() -> None:
    """Python 3.9's grammar, and annotations left unevaluated (``from __future__ import
    annotations``), so that ``list[str]`` or ``X | None`` in a signature cannot break 3.9."""
    sources = sorted(PACKAGE.glob("*.py")) + sorted(EXAMPLES.glob("*.py"))
    assert len(sources) >= 7
    for path in sources:
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text, str(path), feature_version=(3, 9))
        annotated = any(
            isinstance(node, (ast.AnnAssign, ast.arg)) and node.annotation is not None
            or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None
            for node in ast.walk(tree)
        )
        if annotated:
            assert "from __future__ import annotations" in text, path
