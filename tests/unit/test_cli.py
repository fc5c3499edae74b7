"""The client commands' error paths: one line on stderr, exit code 2 (diff's 1 means "changes"),
never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from appkeeper.cli import main

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: here, context: {cluster: c, user: u}}]
current-context: here
"""


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    return str(path)


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize(("args", "says"), [
    (["diff", "-f", "{app}", "--kubeconfig", "{missing}"], "error: no usable kubeconfig"),
    (["diff", "-f", "{missing}", "--kubeconfig", "{kubeconfig}"], "No such file or directory"),
    (["diff", "-f", "{bad_yaml}", "--kubeconfig", "{kubeconfig}"], "not YAML"),
    (["diff", "-f", "{not_app}", "--kubeconfig", "{kubeconfig}"], "error: kind: expected an App"),
    (["diff", "-f", "{app}", "--kubeconfig", "{kubeconfig}", "--context", "elsewhere"], "error: no usable kubeconfig"),
    (["crds", "apply", "--kubeconfig", "{missing}"], "error: no usable kubeconfig"),
    (["status", "app/a", "--kubeconfig", "{missing}"], "error: no usable kubeconfig"),
    (["status", "deployment/a", "--kubeconfig", "{kubeconfig}"], "error: deployment/a: not an App"),
    (["promote", "app/", "--kubeconfig", "{kubeconfig}"], "error: app/: no name"),
])
def test_every_error_is_one_line_and_exit_code_2(args: list[str], says: str, kubeconfig: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    files = {"kubeconfig": kubeconfig, "missing": str(tmp_path / "missing.yaml"),
             "app": str(tmp_path / "app.yaml"), "bad_yaml": str(tmp_path / "bad.yaml"),
             "not_app": str(tmp_path / "cm.yaml")}
    Path(files["app"]).write_text("apiVersion: appkeeper.dev/v1alpha1\nkind: App\nmetadata: {name: a}\n"
                                  "spec: {image: nginx:1.27}\n")
    Path(files["bad_yaml"]).write_text("spec: [unclosed\n")
    Path(files["not_app"]).write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    assert main([a.format(**files) for a in args]) == 2
    assert says in one_error_line(capsys)


def test_status_shows_an_app_at_a_glance() -> None:
    from appkeeper.show import render

    app = {"metadata": {"name": "web", "namespace": "demo", "generation": 3},
           "spec": {"image": "nginx:1.28", "replicas": 2},
           "status": {"observedGeneration": 3, "phase": "Degraded", "image": "nginx:1.27", "readyReplicas": 2,
                      "conditions": [{"type": "Degraded", "status": "True", "reason": "CanaryFailed",
                                      "message": "canary aborted"}],
                      "children": [{"kind": "Deployment", "name": "web"}, {"kind": "Service", "name": "web"}],
                      "repairs": {"count": 2, "lastReason": "ServiceDeleted", "lastTime": "2026-12-03T10:00:00Z"},
                      "lastHealthyRevision": "4",
                      "canary": {"phase": "Aborted", "step": 1, "steps": 2, "replicas": 0,
                                 "startedAt": "2026-12-03T10:01:00Z", "judged": "step 1/2: container web: crash"}}}
    text = "\n".join(render(app))
    assert "Phase:        Degraded\n" in text
    assert "  Degraded     True   CanaryFailed         canary aborted" in text
    assert "Children:     Deployment/web, Service/web" in text
    assert "Repairs:      2, last ServiceDeleted at 2026-12-03T10:00:00Z" in text
    assert "Rollback:     none; the rollback target is revision 4" in text
    assert "Canary:       Aborted, step 1/2 (0 pods) since 2026-12-03T10:01:00Z; step 1/2: container web: crash" in text
