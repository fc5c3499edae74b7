"""hack/capshim.py: a privileged container's spec asks for capabilities this host cannot grant."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def shim() -> ModuleType:
    spec = importlib.util.spec_from_file_location("capshim", ROOT / "hack" / "capshim.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_only_what_the_bounding_set_lacks_is_removed(tmp_path: Path) -> None:
    cap = shim()
    every = (1 << 41) - 1
    here = every & ~(1 << 24)  # no CAP_SYS_RESOURCE, as on these machines
    assert cap.host_bounding_set(f"Name:\tx\nCapBnd:\t{here:016x}\n") == here
    allowed = cap.grantable(here)
    assert "CAP_SYS_RESOURCE" not in allowed
    assert "CAP_SYS_ADMIN" in allowed
    assert len(allowed) == 40
    privileged = {"capabilities": {s: [f"CAP_{c}" for c in cap.CAPS] for s in cap.SETS}}
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"ociVersion": "1.0.2", "process": privileged, "root": {}}))
    cap.rewrite(bundle / "config.json", allowed, "process")
    written = json.loads((bundle / "config.json").read_text())
    for s in cap.SETS:
        assert written["process"]["capabilities"][s] == [c for c in privileged["capabilities"][s]
                                                         if c != "CAP_SYS_RESOURCE"]
    assert written["root"] == {}
    assert cap.limit({"capabilities": {"bounding": ["CAP_CHOWN"]}}, allowed) == []  # nothing to remove


def test_the_subcommand_and_its_files_are_found_past_runcs_global_flags() -> None:
    cap = shim()
    argv = ["--root", "/run/docker/runtime-runc/moby", "--log", "/x/log.json", "--log-format", "json",
            "--systemd-cgroup", "exec", "--process", "/tmp/runc-process123", "--detach", "abc"]
    sub, rest = cap.command(argv)
    assert sub == "exec"
    assert cap.option(rest, "--process", "-p") == "/tmp/runc-process123"
    sub, rest = cap.command(["--root", "/r", "create", "--bundle=/b", "id"])
    assert (sub, cap.option(rest, "--bundle", "-b")) == ("create", "/b")
