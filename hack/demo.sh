#!/usr/bin/env bash
# `make demo`: the local cluster, the Helm chart, the operator, and an example App shown Ready.
# With the real node (root), the operator runs in-cluster from the image built here; without it,
# out of cluster with the chart's ServiceAccount token (KWOK pods run no containers).
# `make demo-down` stops the operator and the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
state=${APPKEEPER_CACHE:-$HOME/.cache/appkeeper}/demo
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

down() {
  if [[ -f $state/operator.pid ]]; then
    kill "$(cat "$state/operator.pid")" 2>/dev/null || true
    rm -f "$state/operator.pid"
    echo "operator stopped"
  fi
  python3 hack/localcluster.py down
}

out_of_cluster_operator() {
  if [[ -f $state/operator.pid ]] && kill -0 "$(cat "$state/operator.pid")" 2>/dev/null; then
    kill "$(cat "$state/operator.pid")"
  fi
  token=$(kubectl create token appkeeper -n appkeeper-system --duration=24h)
  server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  ca=$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority}')
  kubectl config --kubeconfig="$state/operator.kubeconfig" set-cluster local --server="$server" --certificate-authority="$ca" >/dev/null
  kubectl config --kubeconfig="$state/operator.kubeconfig" set-credentials appkeeper --token="$token" >/dev/null
  kubectl config --kubeconfig="$state/operator.kubeconfig" set-context demo --cluster=local --user=appkeeper >/dev/null
  kubectl config --kubeconfig="$state/operator.kubeconfig" use-context demo >/dev/null
  KUBECONFIG=$state/operator.kubeconfig nohup "$root/.venv/bin/appkeeper" run --metrics-port=18080 \
    --health-port=18081 --bind-address=127.0.0.1 >"$state/operator.log" 2>&1 &
  echo $! >"$state/operator.pid"
  for _ in $(seq 1 100); do curl -fs localhost:18081/readyz >/dev/null && break; sleep 0.2; done
  echo "operator pid $(cat "$state/operator.pid"), log $state/operator.log, metrics http://localhost:18080/metrics"
}

up() {
  mkdir -p "$state"
  say "local cluster (builds the pinned binaries on first run; see hack/versions.env)"
  eval "$(python3 hack/localcluster.py up)"
  kubectl get nodes

  say "helm install appkeeper charts/appkeeper"
  # --take-ownership: a CRD left by an earlier release (crds.keep) or applied by hand is adopted
  helm upgrade --install appkeeper charts/appkeeper -n appkeeper-system --create-namespace --wait=false --take-ownership
  kubectl wait --for=jsonpath='{.status.conditions[?(@.type=="Established")].status}'=True crd/apps.appkeeper.dev --timeout=60s

  if kubectl get node realnode-0 >/dev/null 2>&1; then
    say "the operator in-cluster, on the real node: image built here (make image), helm upgrade with it"
    .venv/bin/python hack/images.py import operator
    kubectl label namespace appkeeper-system --overwrite pod-security.kubernetes.io/enforce=restricted >/dev/null
    helm upgrade appkeeper charts/appkeeper -n appkeeper-system --wait --timeout 180s \
      --set image.pullPolicy=Never --set-string 'nodeSelector.appkeeper\.dev/real-node=true' \
      --set 'tolerations[0].key=appkeeper.dev/real-node' --set 'tolerations[0].operator=Exists'
    kubectl -n appkeeper-system get pods -o wide
  else
    say "the operator, as the chart's ServiceAccount (TokenRequest); no real node, so out of cluster"
    out_of_cluster_operator
  fi

  say "kubectl apply -f examples/shop.yaml"
  kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl apply -n demo -f examples/shop.yaml
  kubectl wait -n demo --for=jsonpath='{.status.conditions[?(@.type=="Ready")].status}'=True app/shop --timeout=120s
  kubectl get -n demo app,deployment,service,pvc,ingress,pdb
  kubectl get -n demo app shop -o jsonpath='{range .status.conditions[*]}{.type}={.status} ({.reason}): {.message}{"\n"}{end}'

  if kubectl get node realnode-0 >/dev/null 2>&1; then
    say "an App whose pods really run (the real node), answering through its Service"
    .venv/bin/python hack/images.py import web
    kubectl apply -n demo -f - <<'APP'
apiVersion: appkeeper.dev/v1alpha1
kind: App
metadata:
  name: hello
spec:
  image: appkeeper.local/web:1
  imagePullPolicy: IfNotPresent
  replicas: 2
  ports:
    - {name: http, containerPort: 8080, servicePort: 80}
  probes:
    readiness: {httpGet: {path: /index.html, port: http}, periodSeconds: 1}
  pod:
    nodeSelector: {appkeeper.dev/real-node: "true"}
    tolerations: [{key: appkeeper.dev/real-node, operator: Exists, effect: NoSchedule}]
APP
    kubectl wait -n demo --for=jsonpath='{.status.phase}'=Ready app/hello --timeout=180s
    kubectl get -n demo app hello -o wide
    ip=$(kubectl get -n demo service hello -o jsonpath='{.spec.clusterIP}')
    echo "\$ curl http://$ip/"
    curl -fsS --max-time 5 --retry 5 --retry-connrefused --retry-delay 1 "http://$ip/"
    try_curl="curl http://$ip/                    # the hello App's pods, through its Service"
  else
    say "no real node here (it needs root): the shop App's pods are simulated by KWOK nodes, nothing answers"
    try_curl="# (no real node: pods are simulated, there is nothing to curl)"
  fi
  say "try it"
  cat <<MSG
  $(python3 hack/localcluster.py env | head -1)
  export PATH=$(dirname "$(command -v kubectl)"):$root/.venv/bin:\$PATH
  $try_curl
  kubectl appkeeper status app/shop -n demo    # the App at a glance (the kubectl plugin)
  kubectl -n demo delete deployment shop      # the operator puts it back; see status.repairs
  kubectl -n demo scale app/shop --replicas=5  # scale subresource
  kubectl -n demo describe app shop            # Events
  make demo-down                               # stop everything
MSG
}

case ${1:-up} in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
