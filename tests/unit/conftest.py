from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def app_body(name: str = "shop", namespace: str = "demo", generation: int = 1, **spec: Any) -> dict[str, Any]:
    spec.setdefault("image", "nginx:1.27")
    return {
        "apiVersion": "appkeeper.dev/v1alpha1",
        "kind": "App",
        "metadata": {"name": name, "namespace": namespace, "uid": "uid-1", "generation": generation,
                     "resourceVersion": "1"},
        "spec": spec,
    }


@pytest.fixture
def now() -> datetime:
    return NOW
