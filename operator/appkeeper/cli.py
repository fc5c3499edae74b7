"""`appkeeper run`: start the operator. `appkeeper --version`."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from prometheus_client import start_http_server
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as BaseJsonFormatter

from . import __version__
from .api import GROUP, MAX_DRAIN_SECONDS, PLURAL, VERSION
from .errors import OperatorError
from .health import Health, serve
from .kinds import OPT_INS, SECRETS
from .kube import ApiError, Kube, load_configuration
from .leader import LeaseConfig
from .malloc import fix_mmap_threshold
from .options import Options
from .quiet import RepeatFilter

log = logging.getLogger("appkeeper")
DENIED_DEFAULT = ("kube-system", "kube-public", "kube-node-lease")


def denied_namespaces(given: list[str] | None) -> list[str]:
    """`--deny-namespace` as given (an empty value: none), else the defaults and our own namespace."""
    if given is not None:
        return sorted({ns for ns in given if ns})
    own = os.environ.get("POD_NAMESPACE")
    return sorted({*DENIED_DEFAULT, *([own] if own else [])})


def package_version() -> str:
    return __version__


class JsonFormatter(BaseJsonFormatter):
    """One JSON object per line (python-json-logger, as kopf uses): time, level, logger, message,
    and `object` (the reference kopf attaches, k8s_ref) when the line is about one."""

    def __init__(self) -> None:
        super().__init__("%(message)s", reserved_attrs=[*RESERVED_ATTRS, "k8s_ref", "k8s_skip", "settings"],
                         rename_fields={"exc_info": "exception"}, json_ensure_ascii=False)

    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        # RFC 3339, UTC, to the millisecond.
        log_record["time"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + \
            f".{int(record.msecs):03d}Z"
        log_record["level"] = record.levelname.lower()
        log_record["logger"] = record.name
        super().add_fields(log_record, record, message_dict)
        if hasattr(record, "k8s_ref"):
            log_record["object"] = record.k8s_ref


def configure_logging(fmt: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RepeatFilter())  # a warning that repeats is written once per window, with a count
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # kopf logs every handled watch event; our own logs say what was done.
    logging.getLogger("kopf").setLevel(max(logging.INFO, root.level))
    logging.getLogger("kopf.objects").setLevel(max(logging.WARNING, root.level))
    # One line per liveness/readiness probe would drown the log.
    logging.getLogger("aiohttp.access").setLevel(max(logging.WARNING, root.level))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="appkeeper", description="The appkeeper Kubernetes operator.")
    p.add_argument("--version", action="version", version=f"appkeeper {package_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the operator")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[],
                       help="watch this namespace (repeatable); default: all namespaces")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch all namespaces (default)")
    run.add_argument("--deny-namespace", action="append", default=None, metavar="NAMESPACE",
                     help="never serve an App nor write anything here (repeatable; default: "
                          f"{', '.join(DENIED_DEFAULT)} and $POD_NAMESPACE, the operator's own)")
    run.add_argument("--admission-policy", default=None, metavar="NAME",
                     help="the ValidatingAdmissionPolicy (and binding) that checks tenants' rights: /readyz, a "
                          "metric and an Event say when it is missing (the chart sets it)")
    run.add_argument("--workers", type=int, default=Options.workers,
                     help=f"concurrent reconciles (default {Options.workers})")
    run.add_argument("--resync-seconds", type=float, default=Options.resync_seconds,
                     help=f"reconcile every App at least this often (default {Options.resync_seconds:.0f})")
    run.add_argument("--optional-kinds-poll-seconds", type=float, default=Options.optional_poll_seconds,
                     help="how often the API of a missing optional child kind (ServiceMonitor, NetworkPolicy) is "
                          f"looked for (default {Options.optional_poll_seconds:.0f})")
    add_build_arguments(run)
    run.add_argument("--prometheus-url", default=None,
                     help="the Prometheus that canary analyses (spec.rollout.canary.analysis.prometheus) query, "
                          "e.g. http://prometheus.monitoring:9090")
    run.add_argument("--metrics-port", type=int, default=8080, help="Prometheus /metrics port; 0 disables")
    run.add_argument("--health-port", type=int, default=8081, help="/healthz (alive) and /readyz (serving) port")
    run.add_argument("--bind-address", default="0.0.0.0",
                     help="address the metrics and health ports listen on (default 0.0.0.0: a pod's own)")
    run.add_argument("--log-format", choices=["text", "json"], default="text")
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.add_argument("--kubeconfig", default=None, help="kubeconfig path (default: in-cluster, then $KUBECONFIG)")
    add_election_arguments(run)
    crds = sub.add_parser("crds", help="the App CRD this version ships")
    crds.add_argument("action", choices=["apply"], help="apply: server-side apply it and wait until it is served")
    add_client_arguments(crds)
    diff = sub.add_parser("diff", help="show what the operator would change for an App file (like kubectl diff)",
                          description="Builds the App's children as the operator would, server-side dry-runs "
                                      "each apply, and prints a unified diff per child (or runs "
                                      "$KUBECTL_EXTERNAL_DIFF on two folders, as kubectl diff does). Exit 0: no "
                                      "changes; 1: changes; 2: an error.")
    diff.add_argument("-f", "--filename", required=True, action="append",
                      help="an App manifest (YAML or JSON), a folder of them, or '-' for stdin (repeatable)")
    diff.add_argument("--show-bookkeeping", action="store_true",
                      help="also show the annotations that change with every change (appkeeper.dev/input-hash)")
    diff.add_argument("-n", "--namespace", default=None, help="namespace (default: the manifest's, else default)")
    add_client_arguments(diff)
    add_build_arguments(diff)
    for command, text in (("status", "an App at a glance: phase, conditions, children, repairs, rollback, canary"),
                          ("promote", "promote the App's running canary now (spec.rollout.canary)"),
                          ("abort", "abort the App's running canary: the stable pods keep the old template")):
        sub_parser = sub.add_parser(command, help=text, description=text)
        sub_parser.add_argument("app", help="app/<name> (or <name>)")
        sub_parser.add_argument("-n", "--namespace", default="default", help="namespace (default: default)")
        add_client_arguments(sub_parser)
    return p


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """Where a client command (crds, diff, status, promote, abort) finds the cluster."""
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig path (default: in-cluster, then $KUBECONFIG)")
    parser.add_argument("--context", default=None, help="the kubeconfig context to use (default: its current one)")


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
    """What changes the children the operator builds (diff takes the operator's values)."""
    parser.add_argument("--drain-seconds", type=int, default=Options.drain_seconds,
                        choices=range(MAX_DRAIN_SECONDS + 1),
                        metavar=f"0-{MAX_DRAIN_SECONDS}",
                        help="every pod's preStop sleep where spec.rollout.drainSeconds is unset; 0: none "
                             f"(default {Options.drain_seconds}; the operator's value, for diff)")
    parser.add_argument(OPT_INS[SECRETS], dest="config_secrets", action="store_true",
                        help="Secrets the pods use roll them too and are snapshotted like ConfigMaps; the operator "
                             "must be granted read on Secrets (chart value configRollout.secrets; the operator's "
                             "value, for diff)")


def add_election_arguments(run: argparse.ArgumentParser) -> None:
    election = run.add_argument_group("leader election (run several replicas; only the Lease holder writes)")
    election.add_argument("--leader-elect", action="store_true", help="hold a coordination.k8s.io/v1 Lease")
    election.add_argument("--leader-election-namespace", default=os.environ.get("POD_NAMESPACE", "default"),
                          help="the Lease's namespace (default: $POD_NAMESPACE, else default)")
    election.add_argument("--leader-election-id", default="appkeeper", help="the Lease's name (default appkeeper)")
    election.add_argument("--lease-duration", type=float, default=15.0, help="seconds (default 15)")
    election.add_argument("--renew-deadline", type=float, default=10.0, help="seconds (default 10)")
    election.add_argument("--retry-period", type=float, default=2.0, help="seconds (default 2)")
    election.add_argument("--shards", type=int, default=1,
                          help="split the Apps into this many shards by a stable hash of namespace/name, each "
                               "held through its own Lease (<id>-shard-<i>); every replica takes free shards, "
                               "at most ceil(shards / live replicas), and reconciles only their Apps. Needs "
                               "--leader-elect (default 1: one Lease for all)")


def lease_config(args: argparse.Namespace) -> LeaseConfig | None:
    if not args.leader_elect:
        return None
    identity = f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    return LeaseConfig(args.leader_election_namespace, args.leader_election_id, identity,
                       args.lease_duration, args.renew_deadline, args.retry_period)


def one_shot(args: argparse.Namespace, command: Callable[[Kube], int]) -> int:
    """A client command (diff, crds): every error is one line on stderr and exit code 2 (for diff,
    1 means "changes"), never a traceback."""
    import yaml
    from kubernetes.config import ConfigException

    try:
        return command(Kube(load_configuration(args.kubeconfig, args.context), pool_size=2))
    except ConfigException as e:
        why = f"no usable kubeconfig ({e})"
    except OSError as e:
        why = f"{e.filename}: {e.strerror}" if e.filename else str(e)
    except yaml.YAMLError as e:
        why = f"not YAML: {' '.join(str(e).split())}"
    except (OperatorError, LookupError, ValueError) as e:
        why = str(e)
    print(f"error: {why}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.command == "run" and args.shards != 1 and (args.shards < 1 or not args.leader_elect):
        p.error("--shards: needs --leader-elect, and a number of shards >= 1")
    if args.command == "crds":
        from .crds import apply_crds

        return one_shot(args, apply_crds)
    if args.command in ("status", "promote", "abort"):
        from . import show

        if args.command == "status":
            return one_shot(args, lambda kube: show.show(kube, args.namespace, args.app))
        return one_shot(args, lambda kube: show.request(kube, args.namespace, args.app, args.command))
    if args.command == "diff":
        from . import diff

        return one_shot(args, lambda kube: diff.run(kube, args.filename, args.namespace, args.drain_seconds,
                                                     bookkeeping=args.show_bookkeeping, secrets=args.config_secrets))
    configure_logging(args.log_format, args.log_level)
    fix_mmap_threshold()
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    health = Health()
    if args.health_port:
        serve(health, args.bind_address, args.health_port)
    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.bind_address)
    logging.getLogger("appkeeper").info(
        "appkeeper %s starting: %s, %d workers%s", package_version(),
        f"namespaces {', '.join(args.namespace)}" if args.namespace else "all namespaces", args.workers,
        f", {args.shards} shards" if args.shards > 1 else "")
    kube = Kube(load_configuration(args.kubeconfig), pool_size=2, timeout=10)
    while True:
        wait_for_crd(kube, health)
        try:
            run_kopf(args, health)
        except Exception as e:
            why = worth_restarting(e, kube)
            if why is None:
                raise
            log.warning("%s; serving again once it is back", why)
            health.waiting(why)
            time.sleep(2)  # a CRD deleted and re-created at once must not make a hot loop
            continue
        return 0


def run_kopf(args: argparse.Namespace, health: Health) -> None:
    """One run of kopf, until a signal stops it (returns) or a watch fails (raises)."""
    import kopf  # imported here: `appkeeper --version` and the tests need none of it

    from . import handlers  # registers the kopf handlers

    options = Options(workers=args.workers, resync_seconds=args.resync_seconds,
                      optional_poll_seconds=args.optional_kinds_poll_seconds,
                      kubeconfig=args.kubeconfig, lease=lease_config(args), shards=args.shards,
                      namespaces=list(args.namespace), denied=denied_namespaces(args.deny_namespace),
                      admission_policy=args.admission_policy, own_namespace=args.leader_election_namespace,
                      drain_seconds=args.drain_seconds,
                      opted_in=frozenset({SECRETS} if args.config_secrets else set()),
                      prometheus_url=args.prometheus_url)
    if options.opted_in:
        handlers.watch_opted_in(options.opted_in)
    rt = handlers.Runtime(options, health=health)
    health.details = lambda: {"queue": len(rt.queue)}
    try:
        kopf.run(standalone=True, clusterwide=not args.namespace, namespaces=args.namespace,
                 memo=kopf.Memo(runtime=rt), ready_flag=health.running())
    finally:  # a run kopf ended by raising may not have cleaned up: the next run starts its own watches
        for watch in rt.informers:
            watch.stop()


def crd_served(kube: Kube) -> bool | None:
    """True or False from discovery; None when the API server does not answer."""
    try:
        return kube.serves(f"{GROUP}/{VERSION}", PLURAL)
    except ApiError:
        return None


def worth_restarting(error: BaseException, kube: Kube) -> str | None:
    """After kopf failed: was it the App CRD going away (its watch ends with a 404, and the CRD may
    be back by the time we ask, or discovery no longer lists it), or the API server out of reach
    longer than kopf's retries? Then wait and run again; anything else is a real failure."""
    seen: BaseException | None = error
    while seen is not None:
        if getattr(seen, "status", None) == 404:
            return f"the CRD {PLURAL}.{GROUP} was deleted"
        seen = seen.__cause__ or seen.__context__
    served = crd_served(kube)
    if served is None:
        return "the API server does not answer"
    return None if served else f"the CRD {PLURAL}.{GROUP} was deleted"


def wait_for_crd(kube: Kube, health: Health, interval: float = 2.0) -> None:
    """Block until the App CRD is served, /readyz saying why meanwhile. Never exits: the CRD may be
    installed (or re-created) after the operator."""
    said = False
    while not crd_served(kube):
        if not said:
            log.warning("waiting for the App CRD %s.%s to be served (install it: the chart, or "
                        "kubectl apply -f crds/)", PLURAL, GROUP)
            said = True
        health.waiting(f"waiting for the CRD {PLURAL}.{GROUP}")
        time.sleep(interval)


if __name__ == "__main__":
    sys.exit(main())
