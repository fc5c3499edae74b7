"""The one module that talks HTTP to the Kubernetes API: server-side apply, get, delete, list,
status and metadata patches, Events. Credentials come from the kubeconfig or the in-cluster
ServiceAccount (through the official client's loaders); requests go through one urllib3 pool."""

from __future__ import annotations

import builtins
import contextlib
import json
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import urllib3

from . import metrics
from .api import API_VERSION, Json
from .errors import OperatorError
from .fields import created_entry_patch
from .kinds import PLURALS
from .names import MANAGER

if TYPE_CHECKING:  # the client's models take most of a second to import: only where a config is loaded
    from kubernetes.client import Configuration


class ApiError(OperatorError):
    """A non-2xx answer (status 0: none at all); `reason` is the API's CamelCase reason, `message`
    its words."""

    def __init__(self, status: int, reason: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status  # 0: no answer (connection refused, reset, timed out)
        self.reason = reason
        self.message = message
        self.retry_after = retry_after  # seconds, from a 429's or 503's Retry-After header

    @property
    def unreachable(self) -> bool:  # type: ignore[override]  # a property over the family's plain attribute
        return self.status == 0

    @property
    def terminal(self) -> bool:  # type: ignore[override]
        """Retrying the same request cannot help (invalid object, forbidden, ...). A conflict (409)
        is worth retrying: the next attempt reads the newer version. A 500 that says the object does
        not fit the schema will say so again."""
        if self.status == 500 and "failed to create typed patch object" in self.message:
            return True
        return self.status in (400, 403, 404, 405, 413, 415, 422)


class Fenced(ApiError):
    """A write refused before it was sent: this replica's Lease is no longer provably its own."""

    def __init__(self, message: str) -> None:
        super().__init__(503, "Fenced", message)


LEASES = "/apis/coordination.k8s.io/"  # the election's own writes: never fenced, never denied
_sending = threading.local()  # the fence of the write the calling thread is sending, if any


def _fence_at_send(event: str, args: tuple[Any, ...]) -> None:
    """An audit hook: http.client announces each block of bytes it is about to write to the socket.
    A write is fenced again there, as late as Python can, so a replica frozen between the first
    check and the send (SIGSTOP, a stalled VM) sends nothing once it wakes past its deadline."""
    if event == "http.client.send":
        fence = getattr(_sending, "fence", None)
        if fence is not None:
            fence()


sys.addaudithook(_fence_at_send)


def _namespace_of(path: str) -> str | None:
    """The namespace a request path is in (/api/v1/namespaces/<ns>/..., /apis/g/v/namespaces/<ns>/...)."""
    parts = path.split("?", 1)[0].split("/")
    for i, part in enumerate(parts[:-1]):
        if part == "namespaces" and i in (3, 4):
            return parts[i + 1]
    return None


def retry_after(header: str | None) -> float | None:
    try:
        return max(0.0, float(header)) if header else None
    except ValueError:
        return None  # an HTTP date: rare from the API server; the backoff applies


def load_configuration(kubeconfig: str | None = None, context: str | None = None) -> Configuration:
    from kubernetes import config as kube_config
    from kubernetes.client import Configuration

    cfg = Configuration()
    try:
        kube_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    except kube_config.ConfigException:
        kube_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=cfg)
    return cfg


def connection_fields(cfg: Configuration) -> dict[str, Any]:
    """The arguments of kopf's ConnectionInfo for `cfg`, so kopf's watches and our requests go to
    the same server with the same credentials (kopf's own login would read $KUBECONFIG instead)."""
    try:
        header = cfg.get_api_key_with_prefix("BearerToken", alias="authorization") or ""
    except TypeError:  # an older client (kubernetes < 33): no alias; its kubeconfig loader says "authorization"
        header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix("authorization") or ""
    scheme, _, token = header.partition(" ") if " " in header else ("", "", header)
    return {
        "server": cfg.host, "ca_path": cfg.ssl_ca_cert, "insecure": not cfg.verify_ssl,
        "scheme": scheme or None, "token": token or None,
        "certificate_path": cfg.cert_file, "private_key_path": cfg.key_file,
    }


def path_for(api_version: str, kind: str, namespace: str | None, name: str | None = None,
             subresource: str | None = None) -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = base + (f"/namespaces/{quote(namespace)}" if namespace else "") + f"/{PLURALS[kind]}"
    if name:
        path += f"/{quote(name)}"
    if subresource:
        path += f"/{subresource}"
    return path


def user_agent_for(identity: str | None) -> str:
    """Ours; with the replica's identity when there are several, so the API server's audit log
    tells their writes apart."""
    return f"{MANAGER}/0.1" + (f" ({identity})" if identity else "")


def _send(pool: urllib3.PoolManager, verb: str, method: str, url: str, **kwargs: Any) -> urllib3.BaseHTTPResponse:
    """One request, counted by `verb` and answer. No answer at all (refused, reset, timed out) is
    ApiError status 0: worth another try."""
    try:
        resp = pool.request(method, url, **kwargs)
    except urllib3.exceptions.HTTPError as e:
        metrics.API_REQUESTS.labels(verb, "0").inc()
        raise ApiError(0, "Unreachable", f"{type(e).__name__}: {e}") from e
    metrics.API_REQUESTS.labels(verb, str(resp.status)).inc()
    return resp


def _decoded(resp: urllib3.BaseHTTPResponse) -> Json:
    if not resp.data:
        return {}
    try:
        return dict(json.loads(resp.data))
    except ValueError:
        return {"message": resp.data.decode(errors="replace")[:500]}


def _error(resp: urllib3.BaseHTTPResponse, payload: Json) -> ApiError:
    return ApiError(resp.status, str(payload.get("reason") or resp.reason), str(payload.get("message") or resp.reason),
                    retry_after(resp.headers.get("Retry-After")))


class WatchStream:
    """One open watch: its events, decoded line by line as they arrive, until the server ends it.
    `close()` may be called from another thread; the iteration then ends."""

    def __init__(self, resp: urllib3.BaseHTTPResponse) -> None:
        self._resp = resp
        self.closed = False

    @classmethod
    def open(cls, pool: urllib3.PoolManager, url: str, headers: dict[str, str],
             timeout: urllib3.Timeout) -> WatchStream:
        resp = _send(pool, "WATCH", "GET", url, headers=headers, preload_content=False, retries=False,
                     timeout=timeout)
        if resp.status >= 400:
            error = _error(resp, _decoded(resp))
            resp.release_conn()
            raise error
        return cls(resp)

    def __iter__(self) -> Iterator[Json]:
        buf = b""
        try:
            for chunk in self._resp.stream(65536):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        except (urllib3.exceptions.HTTPError, OSError) as e:
            if not self.closed:
                raise ApiError(0, "Unreachable", f"the watch broke: {type(e).__name__}: {e}") from e
        finally:
            self._resp.release_conn()

    def close(self) -> None:
        self.closed = True
        # Unblocks a read waiting in another thread; a stream read to its end is back in the pool already.
        with contextlib.suppress(OSError, RuntimeError, ValueError):
            self._resp.shutdown()
        self._resp.close()


class Kube:
    def __init__(self, cfg: Configuration, pool_size: int = 16, timeout: float = 30.0,
                 identity: str | None = None, connect_retries: int = 0) -> None:
        self.cfg = cfg
        self.connect_retries = connect_retries
        # Called before every write but a Lease's; raises Fenced once this replica may no longer
        # write (its Lease not renewed within the renew deadline). None: no election, no fence.
        self.fence: Callable[[], None] | None = None
        # Namespaces nothing is ever written in but our own Leases (operatorNamespacesDenied).
        self.denied: frozenset[str] = frozenset()
        self.user_agent = user_agent_for(identity)
        self.host = cfg.host.rstrip("/")
        self.timeout = timeout
        kwargs: dict[str, Any] = {"maxsize": pool_size, "block": True}
        if self.host.startswith("https"):
            kwargs["cert_reqs"] = "CERT_REQUIRED" if cfg.verify_ssl else "CERT_NONE"
            if cfg.ssl_ca_cert:
                kwargs["ca_certs"] = cfg.ssl_ca_cert
            if cfg.cert_file:
                kwargs["cert_file"] = cfg.cert_file
                kwargs["key_file"] = cfg.key_file
        self.pool = urllib3.PoolManager(num_pools=2, **kwargs)
        # Watches hold a connection for minutes: never out of the pool the reconciles wait on.
        self.watch_pool = urllib3.PoolManager(num_pools=2, **{**kwargs, "block": False})

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": self.user_agent}
        # Newer clients keep the token under "BearerToken", older ones under "authorization";
        # either may carry the "Bearer " prefix already. The hook refreshes rotated tokens.
        token = self.cfg.get_api_key_with_prefix("BearerToken", alias="authorization")
        if token:
            headers["Authorization"] = token if token.lower().startswith("bearer ") else f"Bearer {token}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def request(self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None,
                content_type: str = "application/json") -> Json:
        url = self.host + path + (f"?{urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body).encode()
        # Every write but a Lease's (by its API group: a child may be named "leases-...") is guarded.
        guarded = method != "GET" and not path.startswith(LEASES)
        if guarded and self.denied and (namespace := _namespace_of(path)) in self.denied:
            raise ApiError(403, "Forbidden", f"appkeeper does not write in namespace {namespace} "
                                             "(operatorNamespacesDenied)")
        fence = self.fence if guarded else None
        if fence is not None:
            fence()  # before any work; and again as the bytes go out (_fence_at_send)
        _sending.fence = fence
        try:
            resp = _send(self.pool, method, method, url, body=data,
                         headers=self._headers(content_type if data else None), timeout=self.timeout,
                         retries=urllib3.Retry(connect=self.connect_retries, read=0, redirect=0))
        finally:
            _sending.fence = None
        payload = _decoded(resp)
        if resp.status >= 400:
            raise _error(resp, payload)
        return payload

    def serves(self, group_version: str, plural: str) -> bool:
        """Whether discovery lists `plural` in `group_version` (readable by any identity): a CRD that
        is missing, or not yet established, is not served."""
        try:
            found = self.request("GET", f"/apis/{group_version}")
        except ApiError as e:
            if e.status == 404:
                return False
            raise
        return any(r.get("name") == plural for r in found.get("resources") or [])

    # --- the verbs the reconciler uses -------------------------------------------------------

    def apply(self, obj: Json, dry_run: bool = False) -> Json:
        """Server-side apply with our field manager; force: appkeeper owns what it declares.
        `dry_run`: the API server answers with the result and stores nothing."""
        meta = obj["metadata"]
        path = path_for(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        query = {"fieldManager": MANAGER, "force": "true", **({"dryRun": "All"} if dry_run else {})}
        return self.request("PATCH", path, obj, query, content_type="application/apply-patch+yaml")

    def create(self, obj: Json) -> Json:
        """POST with our field manager: 409 AlreadyExists when the name is taken."""
        meta = obj["metadata"]
        return self.request("POST", path_for(obj["apiVersion"], obj["kind"], meta.get("namespace")), obj,
                            {"fieldManager": MANAGER})

    def own_created_fields(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Our create left a managedFields entry with operation Update; an apply does not remove
        fields that entry holds. Turn it into our Apply entry (a JSON patch that tests it is still
        ours), so an apply that drops a field removes it, as if the object had been applied from
        the start."""
        live = self.get(api_version, kind, namespace, name)
        entries = (live or {}).get("metadata", {}).get("managedFields") or []
        ops = created_entry_patch(entries)
        if ops:
            self.request("PATCH", path_for(api_version, kind, namespace, name), ops, {"fieldManager": MANAGER},
                         content_type="application/json-patch+json")

    def replace(self, obj: Json) -> Json:
        """A full update (PUT), guarded by the object's resourceVersion."""
        meta = obj["metadata"]
        path = path_for(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        return self.request("PUT", path, obj, {"fieldManager": MANAGER})

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Json | None:
        try:
            return self.request("GET", path_for(api_version, kind, namespace, name))
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str, label_selector: str,
             page: int = 0) -> builtins.list[Json]:
        """Every object; `page` > 0: asked for in pages of that many, so no one answer is decoded in
        one long hold of the interpreter (a resync's list of every App runs beside repairs)."""
        if page <= 0:
            return self.list_at(api_version, kind, namespace, label_selector)[0]
        items: builtins.list[Json] = []
        query = {"labelSelector": label_selector, "limit": str(page)}
        while True:
            out = self.request("GET", path_for(api_version, kind, namespace), query=query)
            items += out.get("items") or []
            token = (out.get("metadata") or {}).get("continue")
            if not token:
                return items
            query = {**query, "continue": str(token)}

    def list_at(self, api_version: str, kind: str, namespace: str,
                label_selector: str) -> tuple[builtins.list[Json], str]:
        """The items, and the resourceVersion of the list (where a watch takes over)."""
        out = self.request("GET", path_for(api_version, kind, namespace), query={"labelSelector": label_selector})
        return list(out.get("items") or []), str((out.get("metadata") or {}).get("resourceVersion") or "")

    def watch(self, api_version: str, kind: str, namespace: str, label_selector: str, resource_version: str,
              timeout_seconds: int = 300) -> WatchStream:
        """A watch from `resource_version`, with bookmarks; the server ends it after `timeout_seconds`.
        Raises ApiError if it cannot be opened (status 0: no answer)."""
        query = {"watch": "1", "allowWatchBookmarks": "true", "timeoutSeconds": str(timeout_seconds),
                 "resourceVersion": resource_version, **({"labelSelector": label_selector} if label_selector else {})}
        url = self.host + path_for(api_version, kind, namespace) + f"?{urlencode(query)}"
        return WatchStream.open(self.watch_pool, url, self._headers(),
                                urllib3.Timeout(connect=self.timeout, read=timeout_seconds + 30))

    def events_about(self, namespace: str, kind: str, name: str, reason: str) -> builtins.list[Json]:
        """core/v1 Events whose involvedObject is that object, with that reason."""
        selector = f"involvedObject.kind={kind},involvedObject.name={name},reason={reason}"
        out = self.request("GET", path_for("v1", "Event", namespace), query={"fieldSelector": selector})
        return list(out.get("items") or [])

    def delete(self, api_version: str, kind: str, namespace: str, name: str, uid: str | None = None) -> bool:
        """Deletes (background propagation); with `uid`, only that incarnation. False if gone."""
        body: Json = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self.request("DELETE", path_for(api_version, kind, namespace, name), body)
            return True
        except ApiError as e:
            if e.status == 404:
                return False
            raise

    def merge_patch(self, api_version: str, kind: str, namespace: str, name: str, patch: Json,
                    subresource: str | None = None) -> Json:
        return self.request("PATCH", path_for(api_version, kind, namespace, name, subresource), patch,
                            query={"fieldManager": MANAGER}, content_type="application/merge-patch+json")

    def patch_app_status(self, namespace: str, name: str, status: Json) -> Json:
        return self.merge_patch(API_VERSION, "App", namespace, name, {"status": status}, "status")

    def create_event(self, event: Json) -> None:
        self.request("POST", path_for("v1", "Event", event["metadata"]["namespace"]), event)
