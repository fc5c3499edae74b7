"""constraints.txt pins every dependency and dev tool pyproject.toml names, so CI and the image
install the same versions each time."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_declared_dependency_is_pinned_exactly() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared += [d for d in extra if not d.startswith("appkeeper")]
    names = {normalized(re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0]) for d in declared}
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep, f"constraints.txt: {line!r} is not an exact pin"
            pins[normalized(name)] = version
    assert sorted(names - set(pins)) == []
    assert len(pins) > len(names)  # their dependencies are pinned too
