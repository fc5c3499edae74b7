"""`appkeeper crds apply`: server-side apply the App CRD this version ships, and wait until the API
server serves it. For clusters where the release does not own the CRD (chart value
crds.enabled=false), the chart runs this as a pre-upgrade hook (a Job with the operator image,
allowed only this one CRD), so an upgrade brings the new schema before the new operator needs it."""

from __future__ import annotations

import sys
import time
from importlib import resources
from typing import TextIO

import yaml

from .api import Json
from .kube import ApiError, Kube

MANAGER = "appkeeper-crds"
BASE = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def shipped() -> list[Json]:
    """The CRDs packaged with this version (the repository's crds/, copied; a test keeps them equal)."""
    folder = resources.files("appkeeper") / "crds"
    return [yaml.safe_load(f.read_text()) for f in sorted(folder.iterdir(), key=lambda f: f.name)
            if f.name.endswith(".yaml")]


def established(crd: Json) -> bool:
    return any(c.get("type") == "Established" and c.get("status") == "True"
               for c in (crd.get("status") or {}).get("conditions") or [])


def apply_crds(kube: Kube, out: TextIO = sys.stdout, timeout: float = 60.0) -> int:
    for crd in shipped():
        name = crd["metadata"]["name"]
        try:
            kube.request("PATCH", f"{BASE}/{name}", crd, {"fieldManager": MANAGER, "force": "true"},
                         content_type="application/apply-patch+yaml")
        except ApiError as e:
            print(f"error: applying CRD {name}: {e.status} {e.reason}: {e.message}", file=sys.stderr)
            return 1
        deadline = time.monotonic() + timeout
        while not established(kube.request("GET", f"{BASE}/{name}")):
            if time.monotonic() > deadline:
                print(f"error: CRD {name} not Established after {timeout:.0f}s", file=sys.stderr)
                return 1
            time.sleep(0.5)
        versions = ", ".join(v["name"] for v in crd["spec"]["versions"])
        print(f"applied CRD {name} ({versions}); Established", file=out)
    return 0
