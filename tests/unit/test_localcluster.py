"""The local cluster script's error paths, without starting anything."""

from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def lc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("localcluster", ROOT / "hack" / "localcluster.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["localcluster"] = module
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "STATE", tmp_path / "state")
    return module


def test_go_missing_is_said_plainly(lc: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(lc.ClusterError, match="Go is not installed"):
        lc.build_binaries()


def test_stale_state_folder_is_recognized(lc: ModuleType) -> None:
    pids = lc.STATE / "pids"
    pids.mkdir(parents=True)
    (pids / "etcd").write_text("999999999")
    ok, msg = lc.status()
    assert not ok
    assert "stale state" in msg
    assert "make cluster-down" in msg


def test_taken_port_is_named(lc: ModuleType, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        ports = lc.Ports.free()
        ports.apiserver = taken
        with pytest.raises(lc.ClusterError, match=f"port {taken} is already taken"):
            lc.start_processes(tmp_path, ports, tmp_path, "https://127.0.0.1:1", "127.0.0.1")


def test_no_state_means_not_running(lc: ModuleType) -> None:
    assert lc.status() == (False, "no local cluster is running")


def test_a_reused_pid_is_not_ours_and_stale_state_is_cleared(lc: ModuleType) -> None:
    import os

    pids = lc.STATE / "pids"
    pids.mkdir(parents=True)
    (pids / "kube-apiserver").write_text(str(os.getpid()))  # alive, but it is pytest, not ours
    (pids / "kube-apiserver.start").write_text("1")  # started at another time than this pid
    assert not lc.ours("kube-apiserver", os.getpid())
    assert "stale state" in lc.status()[1]
    lc.down()
    assert not lc.STATE.exists()


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path) -> None:
    """`localcluster.py env | head -1`, as make demo prints its hint: a closed pipe ends it quietly."""
    import os
    import subprocess

    state = tmp_path / "state"
    state.mkdir()
    (state / "bin-dir").write_text(str(tmp_path))
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line
    try:
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[2] / "hack" / "localcluster.py"),
                               "env"], stdout=write, stderr=subprocess.PIPE, text=True, timeout=30,
                              env={**os.environ, "APPKEEPER_CLUSTER_DIR": str(state)})
    finally:
        os.close(write)
    assert "Traceback" not in proc.stderr
    assert proc.returncode == -13  # SIGPIPE, as `yes | head -1` ends
