"""e2e fixtures: a real cluster ($KUBECONFIG when set, else the local control plane, started and
stopped here), the CRD, the operator as a real process, and a namespace per test."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LOCALCLUSTER = ROOT / "hack" / "localcluster.py"


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def wait_condition(ref: str, condition: str, namespace: str | None = None, timeout: int = 60) -> None:
    """Polls until `ref` (kind/name) has `condition` True. Not `kubectl wait`: both its
    `--for=condition=` and its JSONPath form fail at once, not wait, while the object has no
    `.status.conditions` yet (a CRD just applied, a Pod just created), which made CI fail at random."""
    where = ["-n", namespace] if namespace else []

    def true() -> bool:
        proc = kubectl("get", *where, ref, "-o", "json", check=False)
        if proc.returncode != 0:
            return False
        conditions = (json.loads(proc.stdout).get("status") or {}).get("conditions") or []
        return any(c.get("type") == condition and c.get("status") == "True" for c in conditions)

    wait_for(f"{ref} {condition}", true, timeout=timeout)


def get(kind: str, name: str, namespace: str) -> dict[str, Any] | None:
    proc = kubectl("get", kind, name, "-n", namespace, "-o", "json", "--show-managed-fields", check=False)
    if proc.returncode != 0:
        if "NotFound" in proc.stderr:
            return None
        raise AssertionError(proc.stderr)
    return dict(json.loads(proc.stdout))


def items(kind: str, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
    args = ["get", kind, "-n", namespace, "-o", "json"]
    if selector:
        args += ["-l", selector]
    return list(json.loads(kubectl(*args).stdout)["items"])


def apply(obj: dict[str, Any] | str, namespace: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    text = obj if isinstance(obj, str) else json.dumps(obj)
    return kubectl("apply", "-n", namespace, "-f", "-", stdin=text, check=check)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60, interval: float = 0.25) -> Any:
    """Polls `check` until it returns something truthy; fails naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except AssertionError as e:
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def app(name: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("image", "nginx:1.27")
    return {"apiVersion": "appkeeper.dev/v1alpha1", "kind": "App", "metadata": {"name": name}, "spec": spec}


def rss_mib(pid: int) -> float:
    """A process's resident memory (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    kubeconfig: str
    started_here: bool
    local: bool  # the local control plane (not a kind or other cluster from $KUBECONFIG)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    local_kubeconfig = subprocess.run([sys.executable, str(LOCALCLUSTER), "kubeconfig"],
                                      capture_output=True, text=True).stdout.strip()
    if os.environ.get("KUBECONFIG"):
        yield Cluster(os.environ["KUBECONFIG"], started_here=False,
                      local=Path(os.environ["KUBECONFIG"]).resolve() == Path(local_kubeconfig).resolve())
        return
    running = subprocess.run([sys.executable, str(LOCALCLUSTER), "status"], capture_output=True, text=True)
    up = subprocess.run([sys.executable, str(LOCALCLUSTER), "up"], stdout=subprocess.PIPE, text=True)
    assert up.returncode == 0, "the local cluster did not start (see its output above)"
    for line in up.stdout.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        os.environ[key] = value.replace("$PATH", os.environ["PATH"])
    take_over_from_the_demo()
    try:
        yield Cluster(os.environ["KUBECONFIG"], started_here=running.returncode != 0, local=True)
    finally:
        if running.returncode != 0 and not os.environ.get("APPKEEPER_KEEP_CLUSTER"):
            subprocess.run([sys.executable, str(LOCALCLUSTER), "down"], check=False)
        os.environ.pop("KUBECONFIG", None)


DEMO_STATE = Path(os.environ.get("APPKEEPER_CACHE", Path.home() / ".cache" / "appkeeper")) / "demo"


def take_over_from_the_demo() -> None:
    """`make demo` left its operator (a release, or a process) on the local cluster: the suite never
    runs beside a second operator, so it says so and removes the demo's (`make demo` again brings it
    back). Its App stays, unserved."""
    pid_file = DEMO_STATE / "operator.pid"
    release = kubectl("get", "deployment", "appkeeper", "-n", "appkeeper-system", "-o", "name", check=False)
    if not pid_file.exists() and release.returncode != 0:
        return
    print("\nthe demo's operator runs on this cluster: the e2e suite takes the cluster over, removing "
          "the demo's release (helm uninstall appkeeper -n appkeeper-system) and its operator process",
          file=sys.stderr)
    if pid_file.exists():
        with contextlib.suppress(ValueError, OSError):
            os.kill(int(pid_file.read_text().strip()), 15)
        pid_file.unlink()
    if release.returncode == 0:
        subprocess.run(["helm", "uninstall", "appkeeper", "-n", "appkeeper-system", "--wait", "--timeout", "120s"],
                       check=False, capture_output=True)
        kubectl("delete", "namespace", "appkeeper-system", "--wait=true", "--timeout=120s", check=False)


def binds_on_first_consumer(claim: dict[str, Any]) -> bool:
    """Whether the claim's StorageClass binds only once a pod uses it (kind's local-path does; the
    local cluster's hostPath class binds at once): ask the cluster."""
    name = (claim.get("spec") or {}).get("storageClassName")
    sc = json.loads(kubectl("get", "storageclass", name, "-o", "json").stdout) if name else {}
    return bool(sc.get("volumeBindingMode") == "WaitForFirstConsumer")


def bind_claim(name: str, namespace: str) -> dict[str, Any]:
    """Waits until the claim is Bound; a class that binds on first consumer (kind's local-path) gets
    a pod that uses it first."""
    claim = wait_for(f"claim {name}", lambda: get("pvc", name, namespace))
    if binds_on_first_consumer(claim):
        kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{name}-user"},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "c", "image": "nginx:1.27",
                     "volumeMounts": [{"name": "d", "mountPath": "/d"}]}],
                     "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": name}}]}}))
    return dict(wait_for(f"claim {name} Bound", lambda: (c := get("pvc", name, namespace))
                         and (c.get("status") or {}).get("phase") == "Bound" and c, timeout=60))


@pytest.fixture(scope="session")
def kwok(cluster: Cluster) -> None:
    """For tests of KWOK's simulated pods (its Stages fake crashes and pull failures, its usage
    annotations fake load): a cluster without KWOK nodes (kind) runs real pods, so they skip there."""
    names = kubectl("get", "nodes", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
    if not any(n.startswith("kwok-node-") for n in names):
        pytest.skip("needs KWOK's simulated pods (hundreds of cheap pods, Stages, usage annotations); this "
                    "cluster has no KWOK node")


@pytest.fixture(scope="session")
def crd(cluster: Cluster) -> str:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    wait_condition("crd/apps.appkeeper.dev", "Established")
    return "apps.appkeeper.dev"


@dataclass
class Operator:
    proc: subprocess.Popen[bytes]
    metrics_port: int
    health_port: int
    log: Path

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_operator(tmp: Path, *extra: str, env: dict[str, str] | None = None) -> Operator:
    metrics_port, health_port = free_port(), free_port()
    log = tmp / f"operator-{metrics_port}.log"
    # The image's entrypoint, `appkeeper run`, with the ports the test chose.
    cmd = [sys.executable, "-m", "appkeeper", "run", f"--metrics-port={metrics_port}",
           f"--health-port={health_port}", "--bind-address=127.0.0.1", "--log-format=json", *extra]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})
    op = Operator(proc, metrics_port, health_port, log)

    def healthy() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"operator exited {proc.returncode}:\n{op.log_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    wait_for("the operator's /healthz", healthy, timeout=60)
    return op


def stop_operator(op: Operator) -> None:
    op.proc.terminate()
    try:
        op.proc.wait(20)
    except subprocess.TimeoutExpired:
        op.proc.kill()
        op.proc.wait()


@pytest.fixture(scope="module")
def operator(crd: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    """One cluster-wide operator per test module; modules that run their own (the RBAC test) get
    the cluster to themselves."""
    op = start_operator(tmp_path_factory.mktemp("operator"))
    yield op
    stop_operator(op)
    errors = [line for line in op.log_text().splitlines() if '"level": "error"' in line]
    print(f"operator log: {op.log} ({len(errors)} error lines)")


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]
