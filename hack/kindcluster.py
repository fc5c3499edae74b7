#!/usr/bin/env python3
"""A kind cluster for the e2e suite (issue 22).

    python3 hack/kindcluster.py up     # the cluster "appkeeper", its kubeconfig, the test images loaded
    python3 hack/kindcluster.py env    # export KUBECONFIG=... for it
    python3 hack/kindcluster.py down   # delete it (and, here, stop the engine we started)

Two paths:
- a machine with its own working Docker (DOCKER_HOST or the default socket answers, and it is not
  ours): the stock kindest/node of the pinned kind, kind's default network and CNI;
- otherwise (this machine: no registry, a root that lacks CAP_SYS_RESOURCE): our own engine
  (hack/kindhost.py) and the node image built here (hack/kindnode.py), with hack/kind/config.yaml.
APPKEEPER_KIND_NODE=local forces the second path on a machine with Docker.

Either way the node is labelled as the suite's "real node" (pods the in-cluster tests place land
there) and the operator and test-web images are loaded with `kind load image-archive`, from the
OCI archives hack/images.py writes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HACK = Path(__file__).resolve().parent
sys.path.insert(0, str(HACK))

import images  # noqa: E402
import kindhost  # noqa: E402
import kindnode  # noqa: E402
import realnode  # noqa: E402

NAME = "appkeeper"
KIND_VERSION = kindnode.versions(HACK / "kind" / "versions.env")["KIND_VERSION"]
KIND_DIR = images.CACHE.parent / "kind"
KIND = KIND_DIR / "kind"
KUBECONFIG = KIND_DIR / "kubeconfig"
STATE = KIND_DIR / "engine"  # "ours" when this script started the engine (down stops it)
CONFIG = HACK / "kind" / "config.yaml"
LOADED = ("operator", "web")
# The e2e specs name these images; on KWOK they never run. On kind the test-web image stands in
# for them (an httpd on 8080; the specs need a pod that runs, not what it runs): tagged here, as
# containerd names them, so nothing is pulled.
STAND_INS = ("docker.io/library/nginx:1.25", "docker.io/library/nginx:1.27", "docker.io/library/nginx:1.28",
             "docker.io/library/nginx:1.29", "docker.io/library/postgres:17")


def log(msg: str) -> None:
    print(f"[kindcluster {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def kind_binary() -> Path:
    if KIND.exists() and KIND_VERSION in subprocess.run([str(KIND), "version"], capture_output=True,
                                                         text=True).stdout:
        return KIND
    log(f"go install sigs.k8s.io/kind@{KIND_VERSION}")
    env = {**os.environ, "GOBIN": str(KIND_DIR), "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0",
           "GOPROXY": os.environ.get("GOPROXY", "https://proxy.golang.org"), "GOSUMDB": "off"}
    subprocess.run(["go", "install", f"sigs.k8s.io/kind@{KIND_VERSION}"], check=True, env=env)
    return KIND


def users_docker() -> bool:
    """A Docker engine of the user's own answers (not the one hack/kindhost.py runs)."""
    if os.environ.get("APPKEEPER_KIND_NODE") == "local" or shutil.which("docker") is None:
        return False
    if os.environ.get("DOCKER_HOST", "") == f"unix://{kindhost.SOCKET}":
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def kind_env(ours: bool) -> dict[str, str]:
    env = {**os.environ, "KUBECONFIG": str(KUBECONFIG)}
    if ours:
        env["DOCKER_HOST"] = f"unix://{kindhost.SOCKET}"
    return env


def kind(ours: bool, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(kind_binary()), *args], env=kind_env(ours), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise SystemExit(f"kind {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc


def kubectl(*args: str) -> str:
    return subprocess.run([str(images.k8s_bins() / "kubectl"), "--kubeconfig", str(KUBECONFIG), *args], check=True,
                          capture_output=True, text=True).stdout


def up() -> None:
    t0 = time.monotonic()
    KIND_DIR.mkdir(parents=True, exist_ok=True)
    ours = not users_docker()
    if ours:
        kindhost.up()
        STATE.write_text("ours\n")
    else:
        STATE.write_text("users\n")
    if NAME in kind(ours, "get", "clusters").stdout.split():
        log(f"kind cluster {NAME} exists; reusing it")
    else:
        create = ["create", "cluster", "--name", NAME, "--kubeconfig", str(KUBECONFIG), "--wait", "180s"]
        if ours:
            create += ["--image", kindnode.node_image(), "--config", str(CONFIG)]
        t1 = time.monotonic()
        kind(ours, *create)
        log(f"kind create cluster: {time.monotonic() - t1:.1f}s")
    kind(ours, "export", "kubeconfig", "--name", NAME, "--kubeconfig", str(KUBECONFIG))
    for node in kind(ours, "get", "nodes", "--name", NAME).stdout.split():
        kubectl("label", "node", node, f"{realnode.LABEL}=true", "--overwrite")
    route(ours, "replace")
    for name in LOADED:
        load(ours, images.build(name))
    stand_ins(ours)
    log(f"up in {time.monotonic() - t0:.1f}s; export KUBECONFIG={KUBECONFIG}")


def route(ours: bool, how: str) -> None:
    """The host reaches the cluster's pod and Service addresses through the node, as it does the local
    cluster's: tests fetch a Service's ClusterIP from here. Only on our own engine, whose guard keeps
    those ranges on the machine."""
    if not ours:
        return
    node = kind(ours, "get", "nodes", "--name", NAME).stdout.split()[0] if how == "replace" else None
    via = kindhost.docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                          node).stdout.strip() if node else ""
    for subnet in (kindhost.POD_SUBNET, kindhost.SERVICE_SUBNET):
        if how == "replace":
            subprocess.run(["ip", "route", "replace", subnet, "via", via, "dev", kindhost.BRIDGE], check=True)
        else:
            subprocess.run(["ip", "route", "del", subnet], capture_output=True, check=False)


def stand_ins(ours: bool) -> None:
    web = images.archive_ref(images.build("web"))[0]
    docker = ["docker", "--host", f"unix://{kindhost.SOCKET}"] if ours else ["docker"]
    for node in kind(ours, "get", "nodes", "--name", NAME).stdout.split():
        for ref in STAND_INS:
            subprocess.run([*docker, "exec", node, "ctr", "--namespace", "k8s.io", "images", "tag", "--force", web,
                            ref], check=True, capture_output=True)
    log(f"{web} tagged as {', '.join(STAND_INS)}")


def load(ours: bool, archive: Path) -> None:
    t0 = time.monotonic()
    kind(ours, "load", "image-archive", "--name", NAME, str(archive))
    log(f"{images.archive_ref(archive)[0]}: loaded in {time.monotonic() - t0:.1f}s")


def engine_is_ours() -> bool:
    return STATE.exists() and STATE.read_text().strip() == "ours"


def down() -> None:
    ours = engine_is_ours() or kindhost.running() is not None
    if KIND.exists() and (not ours or kindhost.running() is not None):
        kind(ours, "delete", "cluster", "--name", NAME, "--kubeconfig", str(KUBECONFIG), check=False)
    if ours:
        route(ours, "del")
        kindhost.down()
    STATE.unlink(missing_ok=True)
    KUBECONFIG.unlink(missing_ok=True)
    log("down")


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "up"
    if what == "up":
        up()
    elif what == "down":
        down()
    elif what == "env":
        print(f"export KUBECONFIG={KUBECONFIG}")
    elif what == "load" and len(argv) > 1:
        for name in argv[1:]:
            load(engine_is_ours(), images.build(name))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
