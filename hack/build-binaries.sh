#!/usr/bin/env bash
# Builds the local cluster's binaries from the Go module proxy at the versions pinned in
# hack/versions.env, into a cache outside the repo. Prints the bin folder on stdout; progress
# goes to stderr. A folder counts as cached only once every binary in it built (.complete).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
versions="$here/versions.env"
# shellcheck source=versions.env
source "$versions"

log() { printf '[build-binaries %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v go >/dev/null 2>&1 || die "Go is not installed (need go >= 1.26 on PATH): see https://go.dev/doc/install"

cache_root=${APPKEEPER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/appkeeper}
key=$(sha256sum "$versions" | cut -c1-12)
dest="$cache_root/k8s/$KUBERNETES_VERSION-$key"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy etcd kwok helm metrics-server coredns crictl)

# The proxy serves the modules; sum.golang.org is not reachable from these machines.
export GOPROXY=${GOPROXY:-https://proxy.golang.org}
# -mod=readonly: the committed go.mod/go.sum are used as they are, never rewritten by a build.
export GOSUMDB=off GOFLAGS=-mod=readonly CGO_ENABLED=0 GOTOOLCHAIN=${GOTOOLCHAIN:-auto}

# Kubernetes' go.mod maps its staging modules to local folders, which `go install` refuses; a
# wrapper module (hack/k8sbuild: go.mod, go.sum, committed) requires k8s.io/kubernetes and points
# each staging module at its release. Its go.sum is checked against every module the proxy serves
# (sum.golang.org is not reachable here, so the committed sums are the check).
# `hack/build-binaries.sh --update-sums` regenerates it after a pin in versions.env changes.
wrapper="$here/k8sbuild"
write_wrapper_module() {  # $1: folder; writes go.mod (requirements and staging replaces)
  local kmod staging_version
  kmod=$(cd "$1" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" \
    | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [[ -f "$kmod" ]] || die "could not download k8s.io/kubernetes@$KUBERNETES_VERSION from $GOPROXY"
  staging_version="v0.${KUBERNETES_VERSION#v1.}"
  {
    echo "module appkeeper.local/k8sbuild"
    echo
    echo "go 1.26"
    echo
    echo "require ("
    echo "	k8s.io/kubernetes $KUBERNETES_VERSION"
    echo "	go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    echo ")"
    echo
    echo "replace ("
    sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\t\1 => \1 '"$staging_version"'#p' "$kmod"
    echo ")"
  } >"$1/go.mod"
}
if [[ "${1:-}" == "--update-sums" ]]; then
  log "regenerating $wrapper/go.mod and go.sum for the pins in $versions"
  rm -f "$wrapper/go.sum"
  write_wrapper_module "$wrapper"
  (cd "$wrapper" && GOFLAGS=-mod=mod go mod tidy) || die "go mod tidy failed for the Kubernetes wrapper module"
  : >"$here/tools.sum"
  for mod in "sigs.k8s.io/kwok@$KWOK_VERSION" "helm.sh/helm/v3@$HELM_VERSION" \
             "sigs.k8s.io/metrics-server@$METRICS_SERVER_VERSION" "github.com/coredns/coredns@$COREDNS_VERSION" \
             "sigs.k8s.io/cri-tools@$CRI_TOOLS_VERSION" \
             "github.com/rancher/local-path-provisioner@$(sed -n 's/^LOCAL_PATH_VERSION=//p' "$here/kind/versions.env")"; do
    sum=$(cd "$wrapper" && GOFLAGS=-mod=mod go mod download -json "$mod" | sed -n 's/.*"Sum": "\(.*\)".*/\1/p')
    [[ -n "$sum" ]] || die "no sum for $mod"
    echo "${mod%@*} ${mod#*@} $sum" >>"$here/tools.sum"
  done
  log "done: review and commit hack/k8sbuild/go.mod, hack/k8sbuild/go.sum and hack/tools.sum"
  exit 0
fi
grep -q "k8s.io/kubernetes $KUBERNETES_VERSION\$" "$wrapper/go.mod" && grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION\$" "$wrapper/go.mod" \
  || die "hack/k8sbuild/go.mod does not pin the versions in $versions: run hack/build-binaries.sh --update-sums"

if [[ -f "$dest/.complete" ]]; then
  echo "$dest/bin"
  exit 0
fi

work="$dest.partial.$$"
rm -rf "$work"
mkdir -p "$work/bin" "$work/src/etcd"
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
log "building into $dest (cold build: expect 10-25 minutes on 2 cores)"
cp "$wrapper/go.mod" "$wrapper/go.sum" "$wrapper/tools.go" "$work/src/"
cp "$wrapper/etcd/main.go" "$work/src/etcd/"

minor=${KUBERNETES_VERSION#v1.}
minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
done

(
  cd "$work/src"
  log "downloading the wrapper module's dependencies, each checked against hack/k8sbuild/go.sum"
  go mod download >&2 || die "a module did not match hack/k8sbuild/go.sum (or could not be downloaded)"
  for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; do
    log "go build k8s.io/kubernetes/cmd/$cmd ($(( $(date +%s) - start ))s so far)"
    go build -trimpath -ldflags "$ldflags" -o "$work/bin/$cmd" "k8s.io/kubernetes/cmd/$cmd" >&2 \
      || die "go build k8s.io/kubernetes/cmd/$cmd failed (see above)"
  done
  log "go build etcd $ETCD_VERSION"
  go build -trimpath -ldflags "-s -w" -o "$work/bin/etcd" ./etcd >&2 || die "go build etcd failed"
)

# name, module, package: each module is checked against hack/tools.sum before it is built (its
# dependencies against the module's own go.sum).
for spec in "kwok sigs.k8s.io/kwok sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" \
            "helm helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm@$HELM_VERSION" \
            "metrics-server sigs.k8s.io/metrics-server sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION" \
            "coredns github.com/coredns/coredns github.com/coredns/coredns@$COREDNS_VERSION" \
            "crictl sigs.k8s.io/cri-tools sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS_VERSION"; do
  read -r name module target <<<"$spec"
  version=${target#*@}
  want=$(awk -v m="$module" -v v="$version" '$1 == m && $2 == v {print $3}' "$here/tools.sum")
  got=$(cd "$work/bin" && GOFLAGS=-mod=mod go mod download -json "$module@$version" | sed -n 's/.*"Sum": "\(.*\)".*/\1/p')
  [[ -n "$want" && "$got" == "$want" ]] \
    || die "$module@$version: sum ${got:-none} is not hack/tools.sum's ${want:-none} (after a pin change: --update-sums)"
  log "go install $target ($(( $(date +%s) - start ))s so far)"
  GOBIN="$work/bin" GOFLAGS=-mod=mod go install -trimpath -ldflags "-s -w" "$target" >&2 || die "go install $target failed"
done

# KWOK's stock stages (node init + lease heartbeat, pod ready/complete/delete) and its resource
# usage metrics config ship in its module; copy them from the module cache next to the binary.
kwok_dir=$(cd "$work/bin" && GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
mkdir -p "$work/kwok"
for f in stage/node/fast/node-initialize.yaml stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
         stage/pod/fast/pod-ready.yaml stage/pod/fast/pod-complete.yaml stage/pod/fast/pod-delete.yaml \
         metrics/resource/metrics-resource.yaml metrics/usage/usage-from-annotation.yaml; do
  cp "$kwok_dir/kustomize/$f" "$work/kwok/" || die "KWOK $KWOK_VERSION has no kustomize/$f"
done

# The pause image's program: Kubernetes' own pause.c, compiled static by the image step (it needs
# a C compiler, which the real node's packages bring).
cp "$(cd "$work/bin" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')/build/pause/linux/pause.c" "$work/pause.c" \
  || die "k8s.io/kubernetes@$KUBERNETES_VERSION has no build/pause/linux/pause.c"

for b in "${binaries[@]}"; do
  [[ -x "$work/bin/$b" ]] || die "$b was not built"
done
rm -rf "$work/src"
cp "$versions" "$work/versions.env"
echo "$(( $(date +%s) - start ))" >"$work/build-seconds"
touch "$work/.complete"
rm -rf "$dest"
mv "$work" "$dest"
trap - EXIT
log "done in $(cat "$dest/build-seconds")s: $dest/bin"
echo "$dest/bin"
