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
