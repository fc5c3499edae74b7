"""Thin kopf wiring: watch the Apps (kopf) and their children and pods (informer.py), keep what the
watches say in the Store, and queue the owning App for reconcile. The work loop is
controller.py; all decisions live in reconcile.py; all HTTP in kube.py.
kopf stores nothing on the objects here (no finalizers, no progress annotations): the only
writes are the ones reconcile makes."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import kopf

from . import informer, metrics
from .api import GROUP, PLURAL, VERSION, Json
from .config import CONFIG_MAP, source_id
from .controller import Controller
from .guard import PolicyGuard
from .health import Health
from .kinds import SECRETS, watched
from .kube import ApiError, Kube, connection_fields, load_configuration
from .leader import LeaderElector, LeaseConfig, ShardElector
from .malloc import trim
from .names import LABEL_APP
from .options import Options
from .reconcile import Reconciler
from .shards import Shards
from .store import AppKey, Store, app_key
from .verify import api_answers, fill, verify
from .workqueue import WorkQueue, spread

log = logging.getLogger("appkeeper")
PROBE_SECONDS = 5.0  # how often the API server's /readyz is asked, to notice it is away
AWAY_PROBE_SECONDS = 2.0  # and while it is away, to notice it is back (one connection each)
POLICY_SECONDS = 30.0  # how often the admission policy's presence is checked
TRIM_SECONDS = 10.0  # how often free heap pages are given back (a few ms of CPU each)


@dataclass
class Runtime:
    options: Options
    store: Store = field(default_factory=Store)
    queue: WorkQueue[AppKey] = field(default_factory=WorkQueue)
    reconciler: Reconciler | None = None
    controller: Controller | None = None  # the work loop (controller.py): its gates, its failures
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    pool: ThreadPoolExecutor | None = None
    elector: LeaderElector | None = None
    shards: Shards | None = None  # sharding: the shards this process owns
    shard_elector: ShardElector | None = None
    unfilled: bool = False  # a shard was taken but listing its objects failed: try again next round
    health: Health | None = None  # told when this run stops, so /readyz stops saying "serving"
    informers: list[informer.Informer] = field(default_factory=list)  # the children's and pods' watches
    election: asyncio.Task[None] | None = None  # stopped last at shutdown: it renews while reconciles drain


class NoDiffBase(kopf.DiffBaseStorage):
    """appkeeper has only raw-event handlers, so kopf's diff base (a deep copy of every object on
    every watch event, and a diff of it against the last) is never read: build, keep and compare
    nothing."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return None  # type: ignore[return-value]  # kopf treats None as "no essence" (nothing to diff)

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def runtime(memo: Any) -> Runtime:
    rt = memo.get("runtime")
    if rt is None:
        rt = memo["runtime"] = Runtime(Options())
    assert isinstance(rt, Runtime)
    return rt


@kopf.on.login()
def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """The --kubeconfig given (else in-cluster, then $KUBECONFIG), as our own client uses; called
    again by kopf when the API server says 401 (a rotated ServiceAccount token is read anew)."""
    return kopf.ConnectionInfo(**connection_fields(load_configuration(runtime(memo).options.kubeconfig)))


def configure(settings: kopf.OperatorSettings) -> None:
    """kopf as appkeeper uses it: raw watch events into the store, nothing of kopf's own state."""
    settings.posting.enabled = False  # we post our own Events, one per action
    settings.scanning.disabled = True  # no cluster-wide CRD/namespace scans: least privilege
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    settings.watching.reconnect_backoff = 1.0  # kopf's 0.1 s would hammer an API server that is down
    settings.persistence.diffbase_storage = NoDiffBase()


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure(settings)
    rt = runtime(memo)
    lease = rt.options.lease
    kube = Kube(load_configuration(rt.options.kubeconfig), pool_size=rt.options.workers * 2,
                identity=lease.identity if lease else None)
    rt.reconciler = Reconciler(kube, rt.store, drain_seconds=rt.options.drain_seconds,
                                secrets=SECRETS in rt.options.opted_in, prometheus_url=rt.options.prometheus_url)
    rt.pool = ThreadPoolExecutor(max_workers=rt.options.workers, thread_name_prefix="reconcile")
    if lease is not None and rt.options.shards > 1:
        rt.shards = Shards(rt.options.shards)
    rt.controller = control = Controller(rt.reconciler, rt.queue, rt.pool, shards=rt.shards,
                                         max_backoff=rt.options.max_backoff_seconds)
    control.api_up.set()  # kopf has just listed through it
    rt.tasks = control.start(rt.options.workers)
    rt.tasks.append(asyncio.create_task(_resync(rt), name="resync"))
    rt.tasks.append(asyncio.create_task(_trim_memory(), name="trim-memory"))
    if rt.options.admission_policy:
        guard = PolicyGuard(kube, rt.options.admission_policy, rt.options.own_namespace)
        if rt.health is not None:
            rt.health.problem = lambda: guard.problem
        rt.tasks.append(asyncio.create_task(_check_policy(guard), name="admission-policy"))
    if rt.health is not None:
        rt.tasks.append(asyncio.create_task(_heartbeat(rt.health), name="heartbeat"))
    loop = asyncio.get_running_loop()

    def queue(key: AppKey, urgent: bool) -> None:  # from an informer's thread
        loop.call_soon_threadsafe(rt.queue.add, key, urgent)

    if lease is None:
        control.leading.set()
        metrics.set_leader(True, "appkeeper")
    elif rt.shards is not None:
        rt.store.accepts = rt.shards.accepts  # before the watches start: nothing is kept until a shard is held
        control.leading.set()  # each key is checked against the shards held
        rt.shard_elector = ShardElector(lease_client(rt.options, lease), lease, rt.options.shards)
        kube.fence = rt.shard_elector.fence  # every write: its App's shard provably still ours
        rt.election = asyncio.create_task(_lead_shards(rt, rt.shard_elector), name="shard-election")
    else:
        rt.elector = LeaderElector(lease_client(rt.options, lease), lease)
        kube.fence = rt.elector.fence  # every write: the Lease provably still ours
        rt.election = asyncio.create_task(_lead(rt, rt.elector), name="leader-election")
    if rt.options.denied:  # enforced here, whatever the admission policy says (or whether it exists)
        kube.denied = frozenset(rt.options.denied)
        accepts, denied = rt.store.accepts, kube.denied
        rt.store.accepts = lambda key: key[0] not in denied and accepts(key)
    # The Apps first (verify with no kinds lists only them): the store keeps only the objects of Apps
    # it holds (and, sharded, accepts).
    try:
        await loop.run_in_executor(None, partial(verify, kube, rt.store, rt.options.namespaces or [""], kinds=()))
    except ApiError as e:  # safe, only dearer: each App's objects are listed when it appears
        log.warning("could not list the Apps before their objects: %s", e)
    rt.informers = informer.start(kube, rt.store, watched(rt.options.opted_in), rt.options.namespaces, queue,
                                  rt.options.optional_poll_seconds)


def _control(rt: Runtime) -> Controller:
    assert rt.controller is not None
    return rt.controller


def lease_client(options: Options, lease: LeaseConfig) -> Kube:
    """The elector's own client: no connection retries, and answers within a quarter of the renew
    deadline, so a round never outlasts the deadline it guards (each is also cut off at it)."""
    return Kube(load_configuration(options.kubeconfig), pool_size=2, timeout=max(0.5, lease.renew_deadline / 4),
                identity=lease.identity, connect_retries=0)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    rt = runtime(memo)
    if rt.health is not None:
        rt.health.waiting("stopping")
    rt.queue.cancel_timers()
    for watch in rt.informers:
        watch.stop()
    for task in rt.tasks:
        task.cancel()
    await asyncio.gather(*rt.tasks, return_exceptions=True)
    loop = asyncio.get_running_loop()
    handing_over = rt.elector is not None or rt.shard_elector is not None
    if rt.pool is not None:
        # A Lease handed over while a reconcile still writes would let two replicas write one App:
        # the reconciles end first, while the election still renews (and the fence still holds).
        await loop.run_in_executor(None, partial(rt.pool.shutdown, wait=handing_over, cancel_futures=True))
    if rt.election is not None:
        rt.election.cancel()
        await asyncio.gather(rt.election, return_exceptions=True)
    if rt.elector is not None:
        await loop.run_in_executor(None, rt.elector.release)
    if rt.shard_elector is not None:
        if rt.shards is not None and rt.shards.owned:  # their tenures end here, after the last reconcile, before a
            # Lease is free: another replica may take one before this process has exited
            _shard_log("gave up", sorted(rt.shards.owned), rt.shard_elector)
            rt.shards.owned.clear()
        await loop.run_in_executor(None, rt.shard_elector.release_all)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def app_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    rt = runtime(memo)
    body: Json = dict(event["object"])
    key = app_key(body)
    if event.get("type") == "DELETED":
        rt.store.drop_app(key)
    elif not rt.store.put_app(body):
        return  # another shard's
    metrics.APPS.set(len(rt.store.app_keys()))
    rt.queue.add(key)


async def config_source_event(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    """A ConfigMap (or, opted in, Secret) some App's pods reference changed: those Apps. The store
    debounces the change (store.ConfigSources); a reconcile before it is due asks to come back when it is."""
    rt = runtime(memo)
    meta = event["object"]["metadata"]
    if LABEL_APP in (meta.get("labels") or {}):
        return  # one of our snapshots: the children's watch has it
    obj = None if event.get("type") == "DELETED" else dict(event["object"])
    source = source_id(str(event["object"].get("kind") or CONFIG_MAP), meta["name"])
    for key in rt.store.configs.put(meta.get("namespace", ""), source, obj):
        rt.queue.add(key)


kopf.on.event("", "v1", "configmaps", id="watch-config-sources")(config_source_event)


def watch_opted_in(opted_in: frozenset[str]) -> None:
    """Before kopf starts: the watches only a granted opt-in may open (kinds.OPT_INS)."""
    if SECRETS in opted_in:
        kopf.on.event("", "v1", "secrets", id="watch-secret-sources")(config_source_event)


async def _lead(rt: Runtime, elector: LeaderElector) -> None:
    """Acquire, then renew, the Lease; a standby keeps trying. Losing it ends the process: no write
    may happen after another replica could have taken over."""
    loop = asyncio.get_running_loop()
    # A new process lets one retry period pass first: a standby already running, its caches warm,
    # takes a Lease just released by a stopped leader before a replacement that is still starting.
    await asyncio.sleep(elector.cfg.retry)
    while True:
        try:
            ok = await asyncio.wait_for(loop.run_in_executor(None, elector.try_acquire_or_renew),
                                        elector.cfg.renew_deadline)
        except TimeoutError:
            log.warning("lease round took longer than the renew deadline (%.0fs)", elector.cfg.renew_deadline)
            ok = False
        except Exception:  # the election must never end quietly while reconciles go on
            log.exception("leader election failed: exiting")
            os._exit(1)
        leading = _control(rt).leading
        if ok and not leading.is_set():
            leading.set()
            metrics.set_leader(True, elector.cfg.name)
        elif not ok and leading.is_set() and elector.lost():
            log.error("lost the lease %s/%s (not renewed within %.0fs): exiting so a new process can stand by",
                      elector.cfg.namespace, elector.cfg.name, elector.cfg.renew_deadline)
            os._exit(1)
        await asyncio.sleep(elector.cfg.retry)


async def _lead_shards(rt: Runtime, elector: ShardElector) -> None:
    """Each round: renew the shards held, take free ones up to our share (list their objects into
    the store, then queue their Apps), hand over the extras once their reconciles have stopped. Any
    failure but the API's ends the process: the election must never end quietly while reconciles
    go on."""
    while True:
        try:
            await _shard_round(rt, elector)
            if rt.unfilled:
                await _fill_shards(rt)
        except Exception:
            log.exception("shard election failed: exiting")
            os._exit(1)
        if elector.lost():
            log.error("shard leases not renewed within %.0fs: exiting so a new process can take them",
                      elector.cfg.renew_deadline)
            os._exit(1)
        await asyncio.sleep(elector.pause())


async def _shard_round(rt: Runtime, elector: ShardElector) -> None:
    """One round, cut off at the renew deadline (which the caller's check and the fence enforce)."""
    assert rt.shards is not None
    try:
        done = await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, elector.round),
                                      elector.cfg.renew_deadline)
    except (ApiError, TimeoutError) as e:
        log.warning("shard leases: %s: %s", type(e).__name__, e)
        return
    if done.lost:  # another replica holds what we thought ours: no write may follow
        log.error("shards %s were taken by another replica: exiting", done.lost)
        os._exit(1)
    if done.taken:
        rt.shards.owned.update(done.taken)
        _shard_log("holds", done.taken, elector)
        rt.unfilled = True
    for shard in done.give:
        await _hand_over(rt, elector, shard)
    metrics.set_leader(bool(rt.shards.owned), elector.cfg.name)
    metrics.SHARDS_HELD.set(len(rt.shards.owned))


async def _fill_shards(rt: Runtime) -> None:
    """The objects of the shards just taken, listed into the store; their Apps queued."""
    assert rt.reconciler is not None
    try:
        for key in await asyncio.get_running_loop().run_in_executor(None, fill, rt.reconciler.deps.kube, rt.store,
                                                                    rt.options.namespaces):
            rt.queue.add(key)
        rt.unfilled = False
    except ApiError as e:
        log.warning("could not list the objects of the shards taken: %s", e)


async def _hand_over(rt: Runtime, elector: ShardElector, shard: int) -> None:
    """Stop taking its Apps, wait for the reconciles of it that run, forget it, release its Lease."""
    assert rt.shards is not None
    assert rt.reconciler is not None
    rt.shards.owned.discard(shard)
    while rt.shards.running[shard]:
        await asyncio.sleep(0.02)
    for key in rt.store.keep_only(rt.shards.accepts):
        rt.reconciler.forget(key)
    _shard_log("gave up", [shard], elector)
    await asyncio.get_running_loop().run_in_executor(None, elector.release, shard)


def _shard_log(what: str, shards: list[int], elector: ShardElector) -> None:
    """`at`: the wall-clock second, to the microsecond, that a test matches against the API server's audit log."""
    log.info("%s %s shard(s) %s", elector.cfg.identity, what, ", ".join(map(str, shards)),
             extra={"shards": shards, "shard_event": what, "at": time.time(), "identity": elector.cfg.identity})


async def _heartbeat(health: Health, every: float = 1.0) -> None:
    """Tells /healthz the event loop still runs: a loop wedged by a handler fails liveness."""
    while True:
        health.beat()
        await asyncio.sleep(every)


async def _check_policy(guard: PolicyGuard, every: float = POLICY_SECONDS) -> None:
    """Is the admission policy still in place? At start, then every `every` seconds."""
    loop = asyncio.get_running_loop()
    while True:
        await loop.run_in_executor(None, guard.check)
        await asyncio.sleep(every)


async def _trim_memory(every: float = TRIM_SECONDS) -> None:
    """Free pages inside the heap go back to the system now and then (malloc.trim)."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(every)
        await loop.run_in_executor(None, trim)


async def _resync(rt: Runtime) -> None:
    """The safety net of level-based: every resync period, the store is checked against fresh lists
    (verify.py) and every App is queued, even if no watch event came. Between times a cheap probe
    watches for the API server coming back after an outage, and then the check runs at once."""
    loop = asyncio.get_running_loop()
    assert rt.reconciler is not None
    control = _control(rt)
    kube, last = rt.reconciler.deps.kube, loop.time()
    while True:
        away = not control.api_up.is_set()
        await asyncio.sleep(min(AWAY_PROBE_SECONDS if away else PROBE_SECONDS, rt.options.resync_seconds))
        due = loop.time() - last >= rt.options.resync_seconds
        if not due or away:
            if not await loop.run_in_executor(None, api_answers, kube):
                control.api_up.clear()  # the workers wait: retrying every App against a dead server is a hot loop
                continue
            if not due and not away:
                continue
        try:  # the informers keep the children; after an outage, check them at once all the same
            kinds = watched(rt.options.opted_in) if not control.api_up.is_set() else ()
            stale = await loop.run_in_executor(None, partial(verify, kube, rt.store, kinds=kinds))
        except ApiError as e:
            control.repeats.log(log, logging.WARNING, "verify", "could not check the store against the API: %s", e)
            control.api_up.clear()
            continue
        if not control.api_up.is_set():  # back after an outage: what waits out a backoff from it is retried now
            stale |= control.take_failed()
            log.info("the API server answers again: %d Apps to reconcile", len(stale))
            control.api_up.set()
        for key in stale:
            rt.queue.add(key)
        if due:
            last = loop.time()
            # Spread over half the period: the periodic check never arrives as one burst.
            for key, delay in spread(rt.store.app_keys(), rt.options.resync_seconds / 2):
                rt.queue.add_after(key, delay)
