from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from ..conftest import ROOT, kubectl

sys.path.insert(0, str(ROOT / "hack"))  # localcluster: the outage tests stop and start its components


@pytest.fixture(autouse=True)
def _many_cheap_pods(kwok: None) -> None:
    """Chaos runs hundreds of Apps: KWOK's simulated pods, not a kind node's (110 pods at most)."""


@pytest.fixture
def ns(cluster: Any, crd: str) -> Iterator[str]:
    name = f"chaos-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)
