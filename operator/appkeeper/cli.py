"""`appkeeper run`: start the operator. `appkeeper --version`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import time
import uuid

from prometheus_client import start_http_server

from . import __version__
from .leader import LeaseConfig


def package_version() -> str:
    return __version__


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(fmt: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
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
    run.add_argument("--workers", type=int, default=8, help="concurrent reconciles (default 8)")
    run.add_argument("--resync-seconds", type=float, default=300.0,
                     help="reconcile every App at least this often (default 300)")
    run.add_argument("--metrics-port", type=int, default=8080, help="Prometheus /metrics port; 0 disables")
    run.add_argument("--health-port", type=int, default=8081, help="liveness/readiness /healthz port")
    run.add_argument("--log-format", choices=["text", "json"], default="text")
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.add_argument("--kubeconfig", default=None, help="kubeconfig path (default: in-cluster, then $KUBECONFIG)")
    election = run.add_argument_group("leader election (run several replicas; only the Lease holder writes)")
    election.add_argument("--leader-elect", action="store_true", help="hold a coordination.k8s.io/v1 Lease")
    election.add_argument("--leader-election-namespace", default=os.environ.get("POD_NAMESPACE", "default"),
                          help="the Lease's namespace (default: $POD_NAMESPACE, else default)")
    election.add_argument("--leader-election-id", default="appkeeper", help="the Lease's name (default appkeeper)")
    election.add_argument("--lease-duration", type=float, default=15.0, help="seconds (default 15)")
    election.add_argument("--renew-deadline", type=float, default=10.0, help="seconds (default 10)")
    election.add_argument("--retry-period", type=float, default=2.0, help="seconds (default 2)")
    return p


def lease_config(args: argparse.Namespace) -> LeaseConfig | None:
    if not args.leader_elect:
        return None
    identity = f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    return LeaseConfig(args.leader_election_namespace, args.leader_election_id, identity,
                       args.lease_duration, args.renew_deadline, args.retry_period)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(args.log_format, args.log_level)
    import kopf  # imported here: `appkeeper --version` and the tests need none of it

    from . import handlers  # registers the kopf handlers

    options = handlers.Options(workers=args.workers, resync_seconds=args.resync_seconds,
                               kubeconfig=args.kubeconfig, lease=lease_config(args))
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    if args.metrics_port:
        start_http_server(args.metrics_port)
    memo = kopf.Memo(runtime=handlers.Runtime(options))
    logging.getLogger("appkeeper").info(
        "appkeeper %s starting: %s, %d workers", package_version(),
        f"namespaces {', '.join(args.namespace)}" if args.namespace else "all namespaces", args.workers)
    kopf.run(
        standalone=True,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=f"http://0.0.0.0:{args.health_port}/healthz",
        memo=memo,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
