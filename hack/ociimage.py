"""Writes an OCI image archive from directory trees, with the standard library only: no Docker, no
registry. `ctr images import` (containerd) and `docker load`-compatible tools read what it writes.

A layer is a folder on disk, archived with the owners, modes and links it has (build it as root).
The archive is reproducible: fixed mtimes, sorted entries, gzip without a timestamp.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

EPOCH = 0  # every file's mtime in a layer: the same inputs give the same digests
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass
class ImageConfig:
    """The parts of the OCI image config a runtime reads (what a Dockerfile's instructions set)."""

    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=lambda: [DEFAULT_PATH])
    user: str = ""
    workdir: str = "/"
    labels: dict[str, str] = field(default_factory=dict)
    exposed_ports: list[str] = field(default_factory=list)


@dataclass
class Blob:
    digest: str
    size: int
    data: bytes


def blob(data: bytes) -> Blob:
    return Blob("sha256:" + hashlib.sha256(data).hexdigest(), len(data), data)


def layer_tar(root: Path, skip: Callable[[str], bool] = lambda _: False) -> bytes:
    """An uncompressed tar of `root`'s contents (paths relative to it), owners and modes kept."""
    buf = io.BytesIO()
    hardlinks: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in sorted(walk(root)):
            if skip(rel):
                continue
            path = root / rel
            st = path.lstat()
            info = tarfile.TarInfo(rel)
            info.uid, info.gid, info.mode, info.mtime = st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), EPOCH
            info.uname = info.gname = ""
            if stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif stat.S_ISLNK(st.st_mode):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in hardlinks:
                    info.type, info.linkname = tarfile.LNKTYPE, hardlinks[key]
                    tar.addfile(info)
                    continue
                hardlinks[key] = rel
                info.size = st.st_size
                with path.open("rb") as f:
                    tar.addfile(info, f)
            # Device nodes, sockets and fifos are left out: the runtime provides /dev.
    return buf.getvalue()


def walk(root: Path) -> Iterable[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            yield name if rel == "." else f"{rel}/{name}"


def write_archive(out: Path, name: str, layers: list[bytes], config: ImageConfig) -> str:
    """Writes the OCI image layout for `name` (e.g. `example.local/web:1`) as a tar at `out`;
    returns the manifest digest."""
    compressed = [blob(gzip.compress(layer, compresslevel=6, mtime=0)) for layer in layers]
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    cfg = {
        "architecture": "amd64", "os": "linux",
        "config": {
            "Entrypoint": config.entrypoint or None, "Cmd": config.cmd or None, "Env": config.env,
            "User": config.user, "WorkingDir": config.workdir, "Labels": config.labels,
            "ExposedPorts": {p: {} for p in config.exposed_ports},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "appkeeper hack/ociimage.py"} for _ in layers],
    }
    config_blob = blob(canonical(cfg))
    manifest = blob(canonical({
        "schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config_blob.digest, "size": config_blob.size},
        "layers": [{"mediaType": MEDIA_LAYER, "digest": b.digest, "size": b.size} for b in compressed],
        "annotations": {"org.opencontainers.image.ref.name": name.rpartition(":")[2]},
    }))
    index = canonical({
        "schemaVersion": 2, "mediaType": MEDIA_INDEX,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST, "digest": manifest.digest, "size": manifest.size,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"io.containerd.image.name": name,
                            "org.opencontainers.image.ref.name": name.rpartition(":")[2]},
        }],
    })
    tmp = out.with_suffix(".partial")
    with tarfile.open(tmp, "w") as tar:
        add_bytes(tar, "oci-layout", canonical({"imageLayoutVersion": "1.0.0"}))
        add_bytes(tar, "index.json", index)
        for b in [config_blob, manifest, *compressed]:
            add_bytes(tar, f"blobs/sha256/{b.digest.removeprefix('sha256:')}", b.data)
    tmp.replace(out)
    return manifest.digest


def canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), EPOCH, 0o644
    tar.addfile(info, io.BytesIO(data))
