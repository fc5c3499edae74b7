"""`appkeeper run`: start the operator. `appkeeper --version`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

import kopf
from prometheus_client import start_http_server

from . import __version__


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
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(args.log_format, args.log_level)
    from . import handlers  # registers the kopf handlers

    options = handlers.Options(workers=args.workers, resync_seconds=args.resync_seconds,
                               kubeconfig=args.kubeconfig)
    if args.kubeconfig:
        import os

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
