"""Every example in examples/ is applied as written and reaches Ready."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import ROOT, Operator, get, kubectl, load_yaml_docs
from .test_operator import wait_ready

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_reaches_ready(operator: Operator, namespace: str, path: Path) -> None:
    kubectl("apply", "-n", namespace, "-f", str(path))
    for doc in load_yaml_docs(path):
        if doc["kind"] == "App":
            body = wait_ready(doc["metadata"]["name"], namespace, timeout=90)
            assert body["status"]["readyReplicas"] == body["status"]["replicas"] >= 1
            if doc["spec"].get("networkPolicy") is not None:  # an optional child, served here
                policy = get("networkpolicy", doc["metadata"]["name"], namespace)
                assert policy is not None
                assert len(policy["spec"]["ingress"][0]["from"]) == 1 + len(doc["spec"]["networkPolicy"]["ingressFrom"])
