"""`appkeeper diff` against a real API server (server-side dry-run): an image change shows exactly
that line, an unchanged App shows nothing and exits 0, a bad spec names the field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import Operator, app, apply, get, kubectl, wait_for
from .test_operator import wait_ready

SPEC = {"replicas": 1, "ports": [{"name": "http", "containerPort": 80}]}


def diff(manifest: dict[str, object], namespace: str, tmp_path: Path, *more: str) -> subprocess.CompletedProcess[str]:
    f = tmp_path / "app.yaml"
    f.write_text(json.dumps(manifest))
    return subprocess.run([sys.executable, "-m", "appkeeper", "diff", "-f", str(f), "-n", namespace, *more],
                          capture_output=True, text=True, timeout=60)


def edits(out: str) -> list[str]:
    return [line for line in out.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def test_diff_shows_what_would_change_and_nothing_else(operator: Operator, namespace: str, tmp_path: Path) -> None:
    apply(app("shop", **SPEC), namespace)
    wait_ready("shop", namespace)
    same = diff(app("shop", **SPEC), namespace, tmp_path)
    assert (same.returncode, same.stdout, same.stderr) == (0, "", "")
    changed = diff(app("shop", **dict(SPEC, image="nginx:1.28")), namespace, tmp_path)
    print(changed.stdout)
    assert changed.returncode == 1, changed.stderr
    assert edits(changed.stdout) == ["-      - image: nginx:1.27", "+      - image: nginx:1.28"]
    assert f"--- Deployment {namespace}/shop (live)" in changed.stdout
    # The child's own content hash changes with it: shown when asked.
    shown = diff(app("shop", **dict(SPEC, image="nginx:1.28")), namespace, tmp_path, "--show-bookkeeping")
    assert len([e for e in edits(shown.stdout) if "appkeeper.dev/input-hash" in e]) == 2
    # Nothing was written: the dry run stored nothing.
    image = kubectl("get", "deployment", "shop", "-n", namespace, "-o",
                    "jsonpath={.spec.template.spec.containers[0].image}").stdout
    assert image == "nginx:1.27"


def test_diff_builds_what_the_operator_builds_in_a_restricted_namespace(operator: Operator, namespace: str,
                                                                        tmp_path: Path) -> None:
    """The pods are built for the namespace's Pod Security standard: diff must build the same."""
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    manifest = app("strict", **dict(SPEC, pod={"securityContext": {"runAsUser": 65532}}))
    apply(manifest, namespace)
    wait_for("the Deployment", lambda: get("deployment", "strict", namespace))
    same = diff(manifest, namespace, tmp_path)
    assert (same.returncode, same.stdout, same.stderr) == (0, "", "")


def test_diff_names_the_bad_field(operator: Operator, namespace: str, tmp_path: Path) -> None:
    bad = diff(app("shop", **dict(SPEC, replicas=-1)), namespace, tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: spec.replicas: must be >= 0, got -1"
