#!/usr/bin/env python3
"""kind's node image, built on this machine with no registry (issue 22).

    python3 hack/kindnode.py build    # prints the image's name; cached by its inputs

A machine with a registry uses the stock kindest/node; this one cannot pull it, nor can
`kind build node-image`, which fetches every image Kubernetes needs beyond its own four from a
registry. So the node is assembled here, from:
- Debian's packages: systemd as PID 1, containerd and runc, the CNI plugins, iptables and nft
  (debootstrap, from the mirror apt uses);
- the pinned Kubernetes binaries the local cluster builds (hack/build-binaries.sh), plus kubeadm,
  built from the same wrapper module;
- the images kubeadm and the node need, preloaded into the node's containerd (tagged as kubeadm
  asks for them, so nothing is pulled): kube-apiserver, kube-controller-manager,
  kube-scheduler, kube-proxy, etcd, CoreDNS and pause from the pinned binaries; the
  local-path-provisioner (its Go module) and a busybox helper for the default StorageClass.
kindnetd is not on the Go module proxy here (403 for sigs.k8s.io/kind/images/kindnetd and
github.com/aojea/kindnet), so this node carries a bridge CNI configuration for a one-node
cluster, and the kind config (hack/kind-config.yaml) says disableDefaultCNI.

Parts kind reads from a node: /kind/version, the kubelet's systemd unit and kubeadm drop-in,
containerd's /etc/containerd/config.toml (kind patches it), /kind/manifests/default-storage.yaml,
and an entrypoint that readies the container for systemd before exec'ing it. Written here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HACK = Path(__file__).resolve().parent
sys.path.insert(0, str(HACK))

import images  # noqa: E402
import kindhost  # noqa: E402
import ociimage  # noqa: E402

ROOT = HACK.parent
CACHE = images.CACHE / "kind"
NODE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "containerd", "runc", "containernetworking-plugins", "iptables",
                 "nftables", "conntrack", "ethtool", "socat", "kmod", "iproute2", "procps", "util-linux", "mount",
                 "ca-certificates", "libseccomp2", "hostname")
# What kube-proxy's image carries besides the binary: the tools it runs (nftables mode; iptables too).
PROXY_TOOLS = ("/usr/sbin/nft", "/usr/sbin/xtables-nft-multi", "/usr/sbin/xtables-legacy-multi", "/usr/sbin/conntrack")
HELPER_IMAGE = "appkeeper.local/local-path-helper:1"
NODE_REPO = "appkeeper.local/kind-node"


def log(msg: str) -> None:
    print(f"[kindnode {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def versions(path: Path = HACK / "versions.env") -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


LOCAL_PATH_VERSION = versions(HACK / "kind" / "versions.env")["LOCAL_PATH_VERSION"]
PROVISIONER_IMAGE = f"appkeeper.local/local-path-provisioner:{LOCAL_PATH_VERSION}"


# --- binaries the local cluster does not build -------------------------------------------------

def go_env() -> dict[str, str]:
    return {**os.environ, "GOPROXY": os.environ.get("GOPROXY", "https://proxy.golang.org"), "GOSUMDB": "off",
            "CGO_ENABLED": "0", "GOTOOLCHAIN": os.environ.get("GOTOOLCHAIN", "auto")}


def build_kubeadm(dest: Path, version: str) -> None:
    """kubeadm from the same wrapper module (and sums) as the other Kubernetes binaries."""
    minor = version.removeprefix("v1.").split(".")[0]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {pkg}.gitVersion={version}", f"-X {pkg}.gitMajor=1", f"-X {pkg}.gitMinor={minor}",
                  f"-X {pkg}.gitTreeState=clean"]
    with tempfile.TemporaryDirectory(prefix="appkeeper-kubeadm-") as src:
        for name in ("go.mod", "go.sum", "tools.go"):
            shutil.copy2(HACK / "k8sbuild" / name, Path(src) / name)
        log("go build k8s.io/kubernetes/cmd/kubeadm")
        subprocess.run(["go", "build", "-trimpath", "-ldflags", " ".join(flags), "-o", str(dest),
                        "k8s.io/kubernetes/cmd/kubeadm"], cwd=src, check=True,
                       env={**go_env(), "GOFLAGS": "-mod=readonly"})


def build_local_path(dest: Path) -> None:
    """The local-path-provisioner, checked against hack/tools.sum before it is built."""
    module = "github.com/rancher/local-path-provisioner"
    want = next((line.split()[2] for line in (HACK / "tools.sum").read_text().splitlines()
                 if line.split()[:2] == [module, LOCAL_PATH_VERSION]), None)
    with tempfile.TemporaryDirectory(prefix="appkeeper-lpp-") as tmp:
        env = {**go_env(), "GOFLAGS": "-mod=mod"}
        info = json.loads(subprocess.run(["go", "mod", "download", "-json", f"{module}@{LOCAL_PATH_VERSION}"],
                                         cwd=tmp, env=env, check=True, capture_output=True, text=True).stdout)
        if want is None or info.get("Sum") != want:
            raise SystemExit(f"{module}@{LOCAL_PATH_VERSION}: sum {info.get('Sum')} is not hack/tools.sum's {want}")
        log(f"go install {module}@{LOCAL_PATH_VERSION}")
        subprocess.run(["go", "install", "-trimpath", "-ldflags", "-s -w", f"{module}@{LOCAL_PATH_VERSION}"],
                       cwd=tmp, check=True, env={**env, "GOBIN": tmp})
        shutil.copy2(Path(tmp) / "local-path-provisioner", dest)


def extra_bins(version: str) -> Path:
    """kubeadm and the local-path-provisioner, cached by what they are built from."""
    key = images.digest_of("kind-bins", HACK / "k8sbuild" / "go.sum", HACK / "tools.sum", version,
                           LOCAL_PATH_VERSION)
    dest = CACHE / f"bins-{key}"
    if (dest / ".complete").exists():
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    build_kubeadm(dest / "kubeadm", version)
    build_local_path(dest / "local-path-provisioner")
    (dest / ".complete").touch()
    return dest


# --- the node's root filesystem ------------------------------------------------------------------

def node_rootfs() -> Path:
    """debootstrap's minimal Debian with what a kind node runs, cached by its inputs."""
    return images.debootstrap(CACHE / "rootfs", NODE_PACKAGES)


def with_libraries(rootfs: Path, programs: tuple[str, ...], dest: Path) -> None:
    """Copies `programs` from `rootfs` into `dest` with the shared libraries they load (ldd, in the
    chroot), and the xtables extensions iptables loads at run time."""
    wanted = set(programs) | {"/usr/lib/x86_64-linux-gnu/xtables"}
    for program in programs:
        for line in images.run("chroot", str(rootfs), "ldd", program).splitlines():
            parts = line.split()
            path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
            if path.startswith("/"):
                wanted.add(path)
    for path in sorted(wanted):
        src = rootfs / path.lstrip("/")
        real = src.resolve() if src.is_symlink() else src
        target = dest / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if real.is_dir():
            shutil.copytree(real, target, dirs_exist_ok=True)
        else:
            shutil.copy2(real, target)


def image_tags(kubeadm: Path, version: str) -> dict[str, str]:
    """What kubeadm will ask the runtime for, by component (kube-apiserver, etcd, coredns, ...)."""
    listed = images.run(str(kubeadm), "config", "images", "list", "--kubernetes-version", version).split()
    return {ref.rpartition("/")[2].partition(":")[0]: ref for ref in listed}


def component_archives(out: Path, bins: Path, extra: Path, rootfs: Path, tags: dict[str, str]) -> list[Path]:
    """OCI archives of the images the node runs, each a binary (and what it execs), tagged as kubeadm
    and the manifests ask for them."""
    archives = []

    def one(name: str, ref: str, files: dict[str, Path], entrypoint: list[str],
            more: Path | None = None) -> None:
        with tempfile.TemporaryDirectory(prefix="appkeeper-kindimg-") as tmp:
            root = Path(tmp)
            if more is not None:
                shutil.copytree(more, root, dirs_exist_ok=True, symlinks=True)
            for where, src in files.items():
                (root / where.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, root / where.lstrip("/"))
            layer = ociimage.layer_tar(root)
        dest = out / f"{name}.tar"
        ociimage.write_archive(dest, ref, [layer], ociimage.ImageConfig(entrypoint=entrypoint))
        archives.append(dest)

    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        one(name, tags[name], {f"/usr/local/bin/{name}": bins / name}, [f"/usr/local/bin/{name}"])
    with tempfile.TemporaryDirectory(prefix="appkeeper-proxytools-") as tools:
        with_libraries(rootfs, PROXY_TOOLS, Path(tools))
        for alias, multi in (("iptables", "xtables-nft-multi"), ("ip6tables", "xtables-nft-multi"),
                             ("iptables-restore", "xtables-nft-multi"), ("iptables-save", "xtables-nft-multi"),
                             ("ip6tables-restore", "xtables-nft-multi"), ("ip6tables-save", "xtables-nft-multi")):
            (Path(tools) / "usr" / "sbin" / alias).symlink_to(multi)
        one("kube-proxy", tags["kube-proxy"], {"/usr/local/bin/kube-proxy": bins / "kube-proxy"},
            ["/usr/local/bin/kube-proxy"], more=Path(tools))
    one("etcd", tags["etcd"], {"/usr/local/bin/etcd": bins / "etcd"}, ["/usr/local/bin/etcd"])
    one("coredns", tags["coredns"], {"/coredns": bins / "coredns"}, ["/coredns"])
    one("local-path-provisioner", PROVISIONER_IMAGE,
        {"/usr/local/bin/local-path-provisioner": extra / "local-path-provisioner"},
        ["/usr/local/bin/local-path-provisioner"])
    with tempfile.TemporaryDirectory(prefix="appkeeper-helper-") as tmp:
        images.busybox_root(Path(tmp) / "root", ["sh", "mkdir", "rm", "chmod", "ls", "cat"])
        layer = ociimage.layer_tar(Path(tmp) / "root")
    ociimage.write_archive(out / "local-path-helper.tar", HELPER_IMAGE, [layer], ociimage.ImageConfig())
    archives.append(out / "local-path-helper.tar")
    archives.append(images.build("pause"))
    return archives


# --- assembly -------------------------------------------------------------------------------------

FILES = {  # hack/kind/<name> -> where the node has it, and its mode
    "entrypoint": ("/usr/local/bin/entrypoint", 0o755),
    "containerd.toml": ("/etc/containerd/config.toml", 0o644),
    "kubelet.service": ("/etc/systemd/system/kubelet.service", 0o644),
    "kubelet.slice": ("/etc/systemd/system/kubelet.slice", 0o644),
    "10-kubeadm.conf": ("/etc/systemd/system/kubelet.service.d/10-kubeadm.conf", 0o644),
    "10-bridge.conflist": ("/etc/cni/net.d/10-bridge.conflist", 0o644),
    "default-storage.yaml": ("/kind/manifests/default-storage.yaml", 0o644),
}
# Units a container has no use for, or that would act on the host's devices and modules.
MASKED = ("systemd-udevd.service", "systemd-udevd-control.socket", "systemd-udevd-kernel.socket",
          "systemd-modules-load.service", "systemd-remount-fs.service", "getty@.service",
          "systemd-firstboot.service", "systemd-journald-audit.socket", "sys-kernel-debug.mount",
          "sys-kernel-tracing.mount", "dev-hugepages.mount")
ENABLED = ("kubelet.service", "kubelet.slice", "containerd.service")


def lay_out(rootfs: Path, bins: Path, extra: Path, version: str) -> None:
    for name in ("kubelet", "kubectl"):
        shutil.copy2(bins / name, rootfs / "usr" / "bin" / name)
    shutil.copy2(extra / "kubeadm", rootfs / "usr" / "bin" / "kubeadm")
    for name, (where, mode) in FILES.items():
        target = rootfs / where.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(HACK / "kind" / name, target)
        target.chmod(mode)
    (rootfs / "kind" / "version").write_text(version + "\n")
    systemd = rootfs / "etc" / "systemd" / "system"
    for unit in MASKED:
        link = systemd / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    wants = systemd / "multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    for unit in ENABLED:
        link = wants / unit
        link.unlink(missing_ok=True)
        source = systemd / unit if (systemd / unit).exists() else Path("/lib/systemd/system") / unit
        link.symlink_to(source)
    for path in ("etc/hostname", "etc/machine-id"):
        (rootfs / path).unlink(missing_ok=True)
    (rootfs / "etc" / "machine-id").touch()


def preload(rootfs: Path, archives: list[Path]) -> None:
    """Imports the archives into the node's containerd store, with the host's containerd (the same
    Debian package) pointed at the rootfs, unpacked by the node's containerd when first run."""
    with tempfile.TemporaryDirectory(prefix="appkeeper-preload-", dir="/run") as tmp:
        sock, config = Path(tmp) / "containerd.sock", Path(tmp) / "config.toml"
        # Neither the CRI plugin nor "opt": an import needs neither, and they would make the host's
        # /etc/cni/net.d and /opt/containerd.
        config.write_text(f'version = 2\nroot = "{rootfs}/var/lib/containerd"\nstate = "{tmp}/state"\n'
                          'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt"]\n'
                          f'[grpc]\n  address = "{sock}"\n')
        proc = subprocess.Popen(["containerd", "--config", str(config), "--log-level", "error"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while not sock.exists():
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the preload containerd did not start")
                time.sleep(0.2)
            ctr = ["ctr", "--address", str(sock), "--namespace", "k8s.io"]
            for archive in archives:
                ref = images.archive_ref(archive)[0]
                images.run(*ctr, "images", "import", "--no-unpack", "--all-platforms", str(archive))
                # Pinned: the kubelet's image garbage collection never removes them.
                images.run(*ctr, "images", "label", ref, "io.cri-containerd.pinned=pinned")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def node_image() -> str:
    """Build-or-reuse the node image in the kind host's Docker; returns its name."""
    version = versions()["KUBERNETES_VERSION"]
    bins = images.k8s_bins()
    rootfs = node_rootfs()
    key = images.digest_of("kind-node", HACK / "kindnode.py", HACK / "images.py", HACK / "ociimage.py",
                           HACK / "kind", rootfs.parent.name, HACK / "versions.env", HACK / "k8sbuild" / "go.sum",
                           HACK / "tools.sum", images.build("pause"))
    name = f"{NODE_REPO}:{version}-{key}"
    if kindhost.docker("image", "inspect", name, check=False).returncode == 0:
        log(f"{name}: cached")
        return name
    extra = extra_bins(version)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="appkeeper-kindnode-", dir=CACHE) as tmp:
        work = Path(tmp) / "rootfs"
        images.run("cp", "-a", str(rootfs), str(work))
        lay_out(work, bins, extra, version)
        out = Path(tmp) / "images"
        out.mkdir()
        tags = image_tags(extra / "kubeadm", version)
        archives = component_archives(out, bins, extra, work, tags)
        log(f"preloading {len(archives)} images into the node's containerd")
        preload(work, archives)
        log("docker import")
        tar = subprocess.Popen(["tar", "-C", str(work), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        changes = ['ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]',
                   "ENV container=docker"]
        subprocess.run(["docker", "--host", f"unix://{kindhost.SOCKET}", "import",
                        *[arg for c in changes for arg in ("--change", c)], "-", name], stdin=tar.stdout, check=True,
                       stdout=subprocess.DEVNULL)
        tar.wait()
    for old in kindhost.docker("image", "ls", "-q", "--filter", f"reference={NODE_REPO}", check=False).stdout.split():
        if old not in kindhost.docker("image", "inspect", "-f", "{{.Id}}", name).stdout:
            kindhost.docker("image", "rm", old, check=False)
    log(f"{name}: built in {time.monotonic() - t0:.0f}s")
    return name


def main(argv: list[str]) -> int:
    if argv[:1] == ["build"]:
        print(node_image())
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
