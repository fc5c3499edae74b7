#!/usr/bin/env python3
"""Container images built on this machine, without Docker or a registry, and imported into the real
node's containerd.

    python3 hack/images.py build [operator|web|pause ...]   build-or-reuse the OCI archives, print their paths
    python3 hack/images.py import [operator|web|pause ...]  ... and import them into the running real node

- operator: what the Dockerfile describes: a Debian base (debootstrap) with Debian's Python, a venv at
  /opt/appkeeper holding the wheel of this repository and its dependencies, uid/gid 65532 with a
  passwd entry, entrypoint `appkeeper run`, the Dockerfile's labels. Tagged as the chart's default
  image (`ghcr.io/appkeeper/appkeeper:<appVersion>`), so `helm install --set image.pullPolicy=Never`
  runs it unchanged.
- web: busybox httpd (Debian's busybox-static) serving /www on :8080; the test Apps' image.
- pause: Kubernetes' own pause.c, compiled static; the pod sandbox image.

Archives are cached in ~/.cache/appkeeper/images by a hash of their inputs: a rebuild happens only
when an input (the package's sources, this script, the pins) changed.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import ociimage
import realnode

HACK = Path(__file__).resolve().parent
ROOT = HACK.parent
CACHE = Path(os.environ.get("APPKEEPER_CACHE", Path.home() / ".cache" / "appkeeper")) / "images"
SUITE = "bookworm"
PAUSE_IMAGE = realnode.PAUSE_IMAGE
WEB_IMAGE = "appkeeper.local/web:1"
# Dropped from the operator image: documentation, apt's lists and caches, and the runtime's own
# mounts (/dev, /proc, /sys, /run are provided by the container runtime).
SKIP_PREFIXES = ("usr/share/doc/", "usr/share/man/", "usr/share/info/", "usr/share/locale/",
                 "var/lib/apt/lists/", "var/cache/apt/", "var/cache/debconf/", "var/log/", "dev/", "proc/",
                 "sys/", "run/", "tmp/")


class ImageError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[images {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(*argv: str, **kw: object) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise ImageError(f"{' '.join(argv[:4])} ... failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return str(proc.stdout)


def digest_of(*parts: bytes | str | Path) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            for f in sorted(p for p in part.rglob("*") if p.is_file() and "__pycache__" not in p.parts) \
                    if part.is_dir() else [part]:
                h.update(str(f.relative_to(ROOT) if f.is_relative_to(ROOT) else f).encode())
                h.update(f.read_bytes())
        else:
            h.update(part.encode() if isinstance(part, str) else part)
    return h.hexdigest()[:16]


def chart_app_version() -> str:
    text = (ROOT / "charts" / "appkeeper" / "Chart.yaml").read_text()
    match = re.search(r'^appVersion:\s*"?([^"\s]+)"?', text, re.M)
    if not match:
        raise ImageError("charts/appkeeper/Chart.yaml has no appVersion")
    return match.group(1)


def operator_image() -> str:
    return f"ghcr.io/appkeeper/appkeeper:{chart_app_version()}"


def dockerfile_labels() -> dict[str, str]:
    """The LABELs the Dockerfile sets, so both ways of building give the same image metadata."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    labels: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("LABEL "):
            labels.update(dict(re.findall(r'([\w.\-]+)="([^"]*)"', line)))
    return labels


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (debootstrap fetches from the same place)."""
    sources = [*sorted(Path("/etc/apt/sources.list.d").glob("*.sources")), Path("/etc/apt/sources.list")]
    for f in sources:
        text = f.read_text() if f.exists() else ""
        for block in text.split("\n\n"):
            if re.search(rf"^Suites:.*\b{SUITE}\b", block, re.M):
                uri = re.search(r"^URIs:\s*(\S+)", block, re.M)
                if uri and not uri.group(1).endswith("-security"):
                    return uri.group(1)
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and parts[2] == SUITE:
                return parts[1]
    raise ImageError(f"no apt source for Debian {SUITE} found in /etc/apt: debootstrap needs a mirror")


def need(tool: str, package: str) -> None:
    if shutil.which(tool) is None and os.geteuid() == 0:
        realnode.install_packages(log)
    if shutil.which(tool) is None:
        raise ImageError(f"{tool} is missing: apt-get install {package} (make real-node-deps installs it)")


def base_rootfs() -> Path:
    """debootstrap's minimal Debian with python3, cached by its inputs."""
    return debootstrap(CACHE / "base", ("python3",))


def debootstrap(prefix: Path, packages: tuple[str, ...]) -> Path:
    """debootstrap's minimal Debian with `packages`, in `<prefix>-<suite>-<hash of the inputs>`."""
    need("debootstrap", "debootstrap")
    mirror = debian_mirror()
    key = digest_of(SUITE, mirror, "minbase", *packages)
    dest = prefix.parent / f"{prefix.name}-{SUITE}-{key}"
    if (dest / ".complete").exists():
        return dest / "rootfs"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    log(f"debootstrap --variant=minbase {SUITE} with {', '.join(packages)}, about a minute")
    run("debootstrap", "--variant=minbase", f"--include={','.join(packages)}", SUITE, str(dest / "rootfs"), mirror)
    (dest / ".complete").touch()
    return dest / "rootfs"


def host_wheels(out: Path) -> list[Path]:
    """Wheels of this package and its dependencies, built on the host (pip inside the chroot cannot
    verify this network's TLS interception), plus pip's own wheel to install them with."""
    run(sys.executable, "-m", "pip", "wheel", "-q", "-c", str(ROOT / "constraints.txt"), "--wheel-dir", str(out),
        str(ROOT), "pip")
    return sorted(out.glob("*.whl"))


def build_operator(dest: Path) -> None:
    base = base_rootfs()
    with tempfile.TemporaryDirectory(prefix="appkeeper-image-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run("cp", "-a", str(base), str(rootfs))
        wheels = rootfs / "tmp" / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        pip = next(w for w in host_wheels(wheels) if w.name.startswith("pip-"))
        log("installing the wheels into /opt/appkeeper (offline, in the chroot)")
        run("chroot", str(rootfs), "python3", "-m", "venv", "--without-pip", "/opt/appkeeper")
        run("chroot", str(rootfs), "/opt/appkeeper/bin/python", f"/tmp/wheels/{pip.name}/pip", "install", "-q",
            "--no-index", "--find-links", "/tmp/wheels", "--no-compile", "--no-cache-dir", "appkeeper")
        run("chroot", str(rootfs), "/opt/appkeeper/bin/python", "-m", "compileall", "-q", "/opt/appkeeper/lib")
        shutil.rmtree(wheels)
        # kopf asks getpass.getuser() at start: the uid must have a passwd entry.
        with (rootfs / "etc" / "passwd").open("a") as f:
            f.write("appkeeper:x:65532:65532:appkeeper:/nonexistent:/usr/sbin/nologin\n")
        with (rootfs / "etc" / "group").open("a") as f:
            f.write("appkeeper:x:65532:\n")
        log("writing the layer")
        layer = ociimage.layer_tar(rootfs, skip=lambda rel: any((rel + "/").startswith(p) for p in SKIP_PREFIXES)
                                   and rel + "/" not in SKIP_PREFIXES)
    config = ociimage.ImageConfig(
        entrypoint=["appkeeper"], cmd=["run"], user="65532:65532",
        env=["PATH=/opt/appkeeper/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"],
        labels={**dockerfile_labels(), "org.opencontainers.image.version": chart_app_version()},
        exposed_ports=["8080/tcp", "8081/tcp"])
    ociimage.write_archive(dest, operator_image(), [layer], config)


def busybox_root(root: Path, applets: list[str]) -> None:
    need("busybox", "busybox-static")
    busybox = Path("/bin/busybox")
    # The image has no libc: the binary must be the static build.
    if b"/lib64/ld-linux" in busybox.read_bytes()[:4096]:
        raise ImageError("/bin/busybox is dynamically linked: apt-get install busybox-static")
    (root / "bin").mkdir(parents=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    for applet in applets:
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nweb:x:65532:65532:web:/www:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nweb:x:65532:\n")
    for d in ("tmp", "root"):
        (root / d).mkdir(mode=0o1777 if d == "tmp" else 0o700)


def build_web(dest: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="appkeeper-image-") as tmp:
        root = Path(tmp)
        busybox_root(root, ["sh", "httpd", "cat", "echo", "ls", "mkdir", "sleep", "wget", "env", "id", "rm",
                            "touch", "date", "hostname", "nslookup"])
        (root / "www").mkdir(mode=0o755)
        (root / "www" / "index.html").write_text("appkeeper test-web\n")
        layer = ociimage.layer_tar(root)
    config = ociimage.ImageConfig(
        # A shell as PID 1 that exits on SIGTERM: httpd as PID 1 ignores it, and every pod deletion
        # would wait out the grace period.
        cmd=["/bin/sh", "-c", "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"], workdir="/www",
        labels={"org.opencontainers.image.title": "appkeeper test-web"}, exposed_ports=["8080/tcp"])
    ociimage.write_archive(dest, WEB_IMAGE, [layer], config)


@functools.cache
def k8s_bins() -> Path:
    """The pinned Kubernetes binaries (hack/build-binaries.sh, through localcluster.py: built once)."""
    return Path(run(sys.executable, str(HACK / "localcluster.py"), "build").strip().splitlines()[-1])


def pause_source() -> Path:
    bins = k8s_bins()
    src = bins.parent / "pause.c"
    if not src.exists():
        raise ImageError(f"{src} is missing: rebuild the binaries (hack/build-binaries.sh)")
    return src


def build_pause(dest: Path) -> None:
    need("cc", "gcc libc6-dev")
    with tempfile.TemporaryDirectory(prefix="appkeeper-image-") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        run("cc", "-Os", "-static", "-s", f"-DVERSION={PAUSE_IMAGE.rpartition(':')[2]}", "-o", str(root / "pause"),
            str(pause_source()))
        layer = ociimage.layer_tar(root)
    config = ociimage.ImageConfig(entrypoint=["/pause"], user="65535:65535")
    ociimage.write_archive(dest, PAUSE_IMAGE, [layer], config)


BUILDERS: dict[str, tuple[Callable[[Path], None], Callable[[], list[bytes | str | Path]]]] = {
    "operator": (build_operator, lambda: [ROOT / "pyproject.toml", ROOT / "constraints.txt", ROOT / "README.md",
                                          ROOT / "operator",
                                          ROOT / "Dockerfile", ROOT / "charts" / "appkeeper" / "Chart.yaml"]),
    "web": (build_web, lambda: [Path("/bin/busybox")]),
    "pause": (build_pause, lambda: [pause_source()]),
}


def build(name: str) -> Path:
    """Build-or-reuse the archive for `name`; returns its path."""
    builder, inputs = BUILDERS[name]
    key = digest_of(name, HACK / "images.py", HACK / "ociimage.py", *inputs())
    dest = CACHE / f"{name}-{key}.tar"
    if dest.exists():
        log(f"{name}: cached {dest.name}")
        return dest
    CACHE.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    builder(dest)
    for old in CACHE.glob(f"{name}-*.tar"):
        if old != dest:
            old.unlink()
    log(f"{name}: built {dest.name} ({dest.stat().st_size / 2**20:.1f} MiB) in {time.monotonic() - t0:.1f}s")
    return dest


def import_archive(archive: Path) -> None:
    """Imports into the real node's containerd (k8s.io namespace, where the kubelet looks)."""
    sock = realnode.containerd_socket()
    if not sock.exists():
        raise ImageError(f"the real node's containerd is not running ({sock} is missing): make cluster-up")
    run("ctr", "--address", str(sock), "--namespace", "k8s.io", "images", "import", str(archive))


def archive_ref(archive: Path) -> tuple[str, str]:
    """(image name, manifest digest) recorded in an archive's index.json."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        assert member is not None
        manifest = json.loads(member.read())["manifests"][0]
    return manifest["annotations"]["io.containerd.image.name"], manifest["digest"]


def imported_digest(name: str) -> str | None:
    out = run("ctr", "--address", str(realnode.containerd_socket()), "--namespace", "k8s.io", "images", "ls",
              f"name=={name}")
    rows = [line.split() for line in out.splitlines()[1:] if line.strip()]
    return rows[0][2] if rows else None


def ensure_imported(name: str) -> None:
    """Build-or-reuse `name`'s archive and import it unless the node already has that exact image."""
    archive = build(name)
    ref, digest = archive_ref(archive)
    if imported_digest(ref) == digest:
        return
    t0 = time.monotonic()
    import_archive(archive)
    log(f"{ref}: imported into the real node in {time.monotonic() - t0:.1f}s")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["build", "import"])
    p.add_argument("images", nargs="*", help=f"any of {', '.join(BUILDERS)} (default: operator)")
    args = p.parse_args()
    unknown = set(args.images) - set(BUILDERS)
    if unknown:
        p.error(f"unknown image(s) {', '.join(sorted(unknown))}: choose from {', '.join(BUILDERS)}")
    try:
        for name in args.images or ["operator"]:
            if args.command == "import":
                ensure_imported(name)
            print(build(name))
    except (ImageError, realnode.NodeError) as e:
        log(f"ERROR: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
