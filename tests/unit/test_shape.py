"""The code stays small enough to read in one sitting: no function over 40 lines, no class over 150."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "appkeeper"


def sizes() -> list[tuple[str, str, int]]:
    out = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                kind = "class" if isinstance(node, ast.ClassDef) else "function"
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                out.append((kind, f"{path.name}:{node.lineno} {node.name}", length))
    return out


def test_functions_under_40_lines_classes_under_150() -> None:
    too_long = [(what, n) for kind, what, n in sizes() if n >= (150 if kind == "class" else 40)]
    assert too_long == []
