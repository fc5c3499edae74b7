"""KWOK Stages that make test pods fail the way real ones do, chosen by image name, so the KWOK tier
can test what the operator does about failing pods without a real node:

- `appkeeper.test/crashloop:1`: the container crash-loops (exit code 1, restarted 3 times);
- `appkeeper.test/pullfail:1`: the image pull fails (ImagePullBackOff).

KWOK's stock `pod-ready` stage is narrowed so it leaves these images alone."""

from __future__ import annotations

CRASHLOOP_IMAGE = "appkeeper.test/crashloop:1"
PULLFAIL_IMAGE = "appkeeper.test/pullfail:1"
IMAGE_KEY = ".spec.containers.[0].image"

_STAGE = """apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: {name}
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '{image_key}'
      operator: 'In'
      values: ['{image}']
    - key: '.status.phase'
      operator: 'In'
      values: ['Pending']
    - key: '.status.containerStatuses'
      operator: 'DoesNotExist'
  delay:
    durationMilliseconds: 1000
  next:
    statusTemplate: |
      {{{{ $now := Now }}}}
      phase: {phase}
      startTime: {{{{ $now | Quote }}}}
      conditions:
      - lastTransitionTime: {{{{ $now | Quote }}}}
        status: "True"
        type: PodScheduled
      - lastTransitionTime: {{{{ $now | Quote }}}}
        status: "False"
        type: Ready
      containerStatuses:
      {{{{ range .spec.containers }}}}
      - image: {{{{ .image | Quote }}}}
        name: {{{{ .name | Quote }}}}
        ready: false
{container}
      {{{{ end }}}}
"""

_CRASHLOOP = """        restartCount: 3
        state:
          waiting:
            reason: CrashLoopBackOff
            message: back-off 40s restarting failed container
        lastState:
          terminated:
            exitCode: 1
            reason: Error
            message: "listen tcp :8080: bind: address already in use"
"""

_PULLFAIL = """        restartCount: 0
        state:
          waiting:
            reason: ImagePullBackOff
            message: 'Back-off pulling image "appkeeper.test/pullfail:1": not found'
"""


def stages() -> list[str]:
    return [
        _STAGE.format(name="appkeeper-crashloop", image_key=IMAGE_KEY, image=CRASHLOOP_IMAGE, phase="Running",
                      container=_CRASHLOOP.rstrip("\n")),
        _STAGE.format(name="appkeeper-pullfail", image_key=IMAGE_KEY, image=PULLFAIL_IMAGE, phase="Pending",
                      container=_PULLFAIL.rstrip("\n")),
    ]


def narrow_pod_ready(stock: str) -> str:
    """KWOK's pod-ready stage, leaving the failing images to the stages above."""
    anchor = "  selector:\n    matchExpressions:\n"
    if anchor not in stock:
        raise ValueError("KWOK's pod-ready stage changed shape; update hack/kwokstages.py")
    extra = (f"    - key: '{IMAGE_KEY}'\n      operator: 'NotIn'\n"
             f"      values: ['{CRASHLOOP_IMAGE}', '{PULLFAIL_IMAGE}']\n")
    return stock.replace(anchor, anchor + extra, 1)


# The node's addresses from KWOK's own flags (--node-ip, the node name), as a status template writes them.
_FROM_FLAGS = """      {{ with NodeIP }}
      - address: {{ . | Quote }}
        type: InternalIP
      {{ end }}
      {{ with NodeName }}
      - address: {{ . | Quote }}
        type: Hostname
      {{ end }}
"""
_ADDRESSES_FROM_FLAGS = "      addresses:\n" + _FROM_FLAGS
# The stock heartbeat's: the status's own addresses, else the flags'.
_ADDRESSES_FROM_STATUS = ("      addresses:\n      {{ with .status.addresses }}\n      {{ YAML . 1 }}\n"
                          "      {{ else }}\n" + _FROM_FLAGS + "      {{ end }}\n")
_ADDRESSES_IF_MISSING = """      {{ if or (not $hasInternalIP) (not $hasHostname) }}
      addresses:
      {{ end }}
      {{ if not $hasInternalIP }}
      {{ with NodeIP }}
      - address: {{ . | Quote }}
        type: InternalIP
      {{ end }}
      {{ end }}
      {{ if not $hasHostname }}
      {{ with NodeName }}
      - address: {{ . | Quote }}
        type: Hostname
      {{ end }}
      {{ end }}
"""


def fix_node_addresses(name: str, stock: str) -> str:
    """KWOK's node stages replace the node's whole status. node-initialize writes the addresses only
    when they are missing, so when it runs again on a node that has them — after the API server was
    down long enough for the node to look not Ready (the chaos tests) — it erases them, and
    metrics-server can no longer reach the node ("no address matched types [InternalIP]"); the
    heartbeat stage copies them from a status that may be stale. Both now write them from KWOK's
    own flags (--node-ip, the node name), every time."""
    for old in (_ADDRESSES_FROM_STATUS, _ADDRESSES_IF_MISSING):
        if old in stock:
            return stock.replace(old, _ADDRESSES_FROM_FLAGS, 1)
    raise ValueError(f"KWOK's {name} stage changed shape; update hack/kwokstages.py")
