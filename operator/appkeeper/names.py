"""The names appkeeper writes on objects, part of the App API's contract (the design's app-api.md):
its field manager, its labels and annotations. Here, not with the builders, so that any layer
(the HTTP client, the store, the watches) may name them without importing the builders."""

from __future__ import annotations

MANAGER = "appkeeper"  # the field manager of every server-side apply
LABEL_APP = "appkeeper.dev/app"  # on every child and pod: the App it belongs to
ANN_HASH = "appkeeper.dev/input-hash"  # on every child: the hash of what built it
ANN_RETAIN = "appkeeper.dev/retain"  # on a claim: kept when its App goes (retain: true)
ANN_RETAINED_FROM = "appkeeper.dev/retained-from"  # on a kept claim: the App it came from
LABEL_TRACK = "appkeeper.dev/track"  # "canary" on a canary's pods and in its selector (canary.py)
ANN_CANARY = "appkeeper.dev/canary"  # on an App, set by a person: promote | abort its canary
