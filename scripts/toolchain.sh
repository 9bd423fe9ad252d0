#!/usr/bin/env bash
# shellcheck disable=SC2317  # build functions are called indirectly: unit NAME PIN FUNCTION
# Build the lab toolchain (pulumi CLI + Python language host, Pulumi resource providers,
# kube-apiserver, kubeadm, etcd/etcdctl, helm) from PINNED Go module versions fetched through the Go
# module proxy, into a cache OUTSIDE the repo:
#
#     ${KUBE_AUDIT_CACHE:-$HOME/.cache/kube-audit}/toolchain/bin/
#
# Pins live in scripts/toolchain.env (with where each came from). Each binary has a stamp file
# holding its pin string; a binary is rebuilt only when its pin changes or it is missing, so a
# second run takes seconds. Wrapper Go modules, logs and stamps live next to bin/ in the cache.
#
# Usage:
#   scripts/toolchain.sh              build what is missing/stale, then print bin dir + versions
#   scripts/toolchain.sh --print-bin  print the bin dir path only (no build, no checks)
#
# Environment: KUBE_AUDIT_CACHE (cache root), GOTOOLCHAIN (default: local, i.e. the machine's Go).
#
# Running pulumi with this toolchain (see the end of the output): put the bin dir on PATH. The
# Python language host is our shim (toolchain/langhost-shim) over the one from sdk/v3 v3.68.0 (see
# toolchain.env): it honours Pulumi.yaml's / PulumiPolicy.yaml's `virtualenv` and runs Python
# policy packs (--policy-pack). No pulumi-resource-command: the proxy refuses it, and the
# program's SSH layer (components/remote/ssh.py) does not need it. Failures exit 1.
# Offline use also wants PULUMI_SKIP_UPDATE_CHECK=true and
# PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true.
set -euo pipefail
set -E

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_ROOT="${KUBE_AUDIT_CACHE:-$HOME/.cache/kube-audit}/toolchain"
BIN="$CACHE_ROOT/bin"

usage() {
    sed -n '3,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

case "${1:-}" in
    --print-bin) printf '%s\n' "$BIN"; exit 0 ;;
    -h|--help) usage; exit 0 ;;
    "") ;;
    *) echo "toolchain.sh: unknown argument: $1 (try --help)" >&2; exit 2 ;;
esac

STAMPS="$CACHE_ROOT/stamps"
WORK="$CACHE_ROOT/work"
LOGS="$CACHE_ROOT/logs"

CURRENT_STEP="setup"
CURRENT_LOG=""
LANE_SUBSHELL=0  # a build lane (a background subshell) sets its own depth

log() { printf '[toolchain %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

fail() {
    printf '\n[toolchain] FAILED in step "%s": %s\n' "$CURRENT_STEP" "$*" >&2
    if [[ -n "$CURRENT_LOG" && -s "$CURRENT_LOG" ]]; then
        printf '[toolchain] last lines of %s:\n' "$CURRENT_LOG" >&2
        tail -n 40 "$CURRENT_LOG" | sed 's/^/    /' >&2
    fi
    exit 1
}
on_err() {
    # In a subshell below a lane, just exit: the lane's ERR trap reports the failing step once.
    if ((BASH_SUBSHELL > LANE_SUBSHELL)); then exit "$1"; fi
    fail "command failed (exit $1): $2"
}
trap 'on_err $? "$BASH_COMMAND"' ERR

# Run a command with its output appended to the current step's log.
run() {
    printf '+ %s\n' "$*" >>"$CURRENT_LOG"
    "$@" >>"$CURRENT_LOG" 2>&1
}

# shellcheck source=toolchain.env
source "$SCRIPT_DIR/toolchain.env"

for tool in go python3 flock; do
    command -v "$tool" >/dev/null || fail "required tool not found on PATH: $tool"
done

mkdir -p "$BIN" "$STAMPS" "$WORK" "$LOGS"
T_START=$(date +%s%3N)

# One build at a time per cache (other scripts may call this concurrently).
exec 9>"$CACHE_ROOT/.lock"
if ! flock -n 9; then
    log "another toolchain.sh holds $CACHE_ROOT/.lock; waiting"
    flock 9
fi

export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export GOFLAGS="-trimpath -buildvcs=false -mod=mod"
export CGO_ENABLED=0
export GO111MODULE=on
unset GOOS GOARCH GOWORK || true
export GOWORK=off
GO_LANG="$(go env GOVERSION | sed -E 's/^go([0-9]+\.[0-9]+).*/\1/')"
# -dwarf=false: the binaries are stripped (-s -w) anyway, so the compiler's debug info is thrown away at
# link time; not making it saves ~10 % of a cold build's CPU (etcd from an empty build cache: 82 s user
# with it, 72 s without). The binaries are otherwise the same, so the pins (stamps) do not change.
BUILD_FLAGS=(-p 2 -trimpath -gcflags=all=-dwarf=false)

# ---------------------------------------------------------------------------------------------
# helpers

# Directory of a module version in the module cache (downloads it if needed).
mod_dir() {
    local json
    json="$(cd "$WORK" && go mod download -json "$1")" || fail "go mod download $1 failed (is this version served by the proxy?)"
    printf '%s\n' "$json" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Dir") or sys.exit(d.get("Error","no Dir")))'
}

# Path of a module version's go.mod file in the module cache.
mod_gomod() {
    local json
    json="$(cd "$WORK" && go mod download -json "$1")" || fail "go mod download $1 failed (is this version served by the proxy?)"
    printf '%s\n' "$json" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("GoMod") or sys.exit(d.get("Error","no GoMod")))'
}

# Commit time of a module version (RFC 3339), from the proxy's .info.
mod_time() {
    (cd "$WORK" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' "$1")
}

# replace_lines GOMOD KIND: print the replace directives of GOMOD as "old|old_ver|new|new_ver".
# KIND=remote: only module => module@version ones (those a wrapper must copy);
# KIND=local: only module => ./path ones (those a wrapper must resolve itself).
replace_lines() {
    go mod edit -json "$1" | python3 -c '
import json, sys
kind = sys.argv[1]
for r in json.load(sys.stdin).get("Replace") or []:
    old, new = r["Old"], r["New"]
    local = not new.get("Version")
    if (kind == "local") == local:
        print("|".join([old["Path"], old.get("Version", ""), new["Path"], new.get("Version", "")]))
' "$2"
}

# new_wrapper DIR MODULE_NAME: a fresh, empty wrapper module.
new_wrapper() {
    rm -rf "$1"
    mkdir -p "$1"
    printf 'module %s\n\ngo %s\n' "$2" "$GO_LANG" >"$1/go.mod"
}

# copy_remote_replaces SRC_GOMOD WRAPPER_DIR LABEL: copy SRC_GOMOD's module=>module@version
# replaces into the wrapper (only the main module's replaces count, so a wrapper must repeat them).
copy_remote_replaces() {
    local old oldv new newv
    while IFS='|' read -r old oldv new newv; do
        [[ -n "$old" ]] || continue
        log "  replace $old${oldv:+@$oldv} => $new@$newv (from $3's go.mod)"
        (cd "$2" && run go mod edit -replace="$old${oldv:+@$oldv}=$new@$newv")
    done < <(replace_lines "$1" remote)
}

# write_tools DIR PKG...: tools.go blank-importing the main packages, so `go mod tidy` resolves them.
write_tools() {
    local dir=$1 pkg
    shift
    {
        printf '//go:build tools\n\npackage tools\n\nimport (\n'
        for pkg in "$@"; do printf '\t_ "%s"\n' "$pkg"; done
        printf ')\n'
    } >"$dir/tools.go"
}

# tidy DIR: go mod tidy, refusing to resolve any import to "latest" (that would be unpinned).
tidy() {
    local before
    before=$(wc -l <"$CURRENT_LOG")
    (cd "$1" && run go mod tidy)
    if tail -n +"$((before + 1))" "$CURRENT_LOG" | grep -q 'finding module for package'; then
        fail "go mod tidy in $1 had to look up a module at latest (unpinned); see $CURRENT_LOG"
    fi
}

# gobuild DIR OUT_NAME PKG LDFLAGS: build PKG inside wrapper DIR into $BIN/OUT_NAME (atomically).
gobuild() {
    local dir=$1 out=$2 pkg=$3 ldflags=$4 t0
    t0=$(date +%s%3N)
    (cd "$dir" && run go build "${BUILD_FLAGS[@]}" -ldflags "-s -w $ldflags" -o "$BIN/.$out.tmp" "$pkg")
    COMPILE_MS=$((COMPILE_MS + $(date +%s%3N) - t0))
    mv -f "$BIN/.$out.tmp" "$BIN/$out"
}

# seconds MS: milliseconds as seconds with one decimal.
seconds() { printf '%d.%01d' $(($1 / 1000)) $((($1 % 1000) / 100)); }

# The units run in two lanes at once (see the end), so what a unit did is kept in a file, not a variable.
RESULTS="$LOGS/results"
COMPILE_MS=0

# unit NAME PIN FUNCTION: (re)build binary NAME with FUNCTION unless its stamp holds PIN.
# Records NAME, state, total seconds, and the seconds `go build` took (the rest of a build is module
# downloads, `go mod tidy` and code generation: its fetch share) in $RESULTS/NAME.
unit() {
    local name=$1 pin=$2 fn=$3 t0 total state
    CURRENT_STEP=$name
    CURRENT_LOG="$LOGS/$name.log"
    COMPILE_MS=0
    t0=$(date +%s%3N)
    if [[ -x "$BIN/$name" && -f "$STAMPS/$name" && "$(cat "$STAMPS/$name")" == "$pin" ]]; then
        state=cached
        log "$name: up to date [$pin]"
    else
        log "$name: building [$pin] (log: $CURRENT_LOG)"
        rm -f "$STAMPS/$name"
        : >"$CURRENT_LOG"
        "$fn"
        [[ -x "$BIN/$name" ]] || fail "$fn did not produce $BIN/$name"
        printf '%s\n' "$pin" >"$STAMPS/$name"
        state=built
    fi
    total=$(($(date +%s%3N) - t0))
    printf '%s %s %s %s\n' "$state" "$(seconds "$total")" "$(seconds $((total - COMPILE_MS)))" \
        "$(seconds "$COMPILE_MS")" >"$RESULTS/$name"
    [[ $state == cached ]] || log "$name: built in $(seconds "$total")s ($(seconds "$COMPILE_MS")s of it go build)"
    CURRENT_LOG=""
}

# ---------------------------------------------------------------------------------------------
# 1. pulumi CLI

PULUMI_PKG=github.com/pulumi/pulumi/pkg/v3
PULUMI_SDK=github.com/pulumi/pulumi/sdk/v3

build_pulumi() {
    local w="$WORK/pulumi-cli"
    new_wrapper "$w" kube-audit.local/toolchain/pulumi-cli
    # pkg/v3 replaces sdk/v3 => ../sdk: require sdk/v3 at the same version instead.
    (cd "$w" && run go get "$PULUMI_PKG@$PULUMI_CLI_VERSION" "$PULUMI_SDK@$PULUMI_CLI_VERSION")
    copy_remote_replaces "$(mod_gomod "$PULUMI_PKG@$PULUMI_CLI_VERSION")" "$w" "$PULUMI_PKG@$PULUMI_CLI_VERSION"
    write_tools "$w" "$PULUMI_PKG/cmd/pulumi"
    tidy "$w"
    # Without version.Version, `pulumi version` is empty and the automation API refuses the CLI.
    gobuild "$w" pulumi "$PULUMI_PKG/cmd/pulumi" \
        "-X $PULUMI_SDK/go/common/version.Version=$PULUMI_CLI_VERSION"
}

# 1b. Python language host: the v3.68 host (see toolchain.env) as pulumi-language-python-legacy,
#     and our shim (toolchain/langhost-shim) as pulumi-language-python, the name the engine starts.
#     The shim forwards every call to the legacy host, filled from the ProgramInfo the CLI sends.

build_pulumi_language_python_legacy() {
    local w="$WORK/pulumi-language-python"
    new_wrapper "$w" kube-audit.local/toolchain/pulumi-language-python
    (cd "$w" && run go get "$PULUMI_SDK@$PULUMI_LANGHOST_SDK_VERSION")
    copy_remote_replaces "$(mod_gomod "$PULUMI_SDK@$PULUMI_LANGHOST_SDK_VERSION")" "$w" "$PULUMI_SDK@$PULUMI_LANGHOST_SDK_VERSION"
    write_tools "$w" "$PULUMI_SDK/python/cmd/pulumi-language-python"
    tidy "$w"
    gobuild "$w" pulumi-language-python-legacy "$PULUMI_SDK/python/cmd/pulumi-language-python" \
        "-X $PULUMI_SDK/go/common/version.Version=$PULUMI_LANGHOST_SDK_VERSION"
}

SHIM_DIR="$SCRIPT_DIR/../toolchain/langhost-shim"
build_pulumi_language_python() {
    # Our own module with its go.mod/go.sum committed: built in place, nothing resolved at build time.
    # It must speak the CLI's protocol: the same sdk/v3 as the CLI.
    grep -q "^[[:space:]]*$PULUMI_SDK $PULUMI_CLI_VERSION\$" "$SHIM_DIR/go.mod" ||
        fail "$SHIM_DIR/go.mod must require $PULUMI_SDK $PULUMI_CLI_VERSION (the CLI's version)"
    local t0
    t0=$(date +%s%3N)
    (cd "$SHIM_DIR" && run go build "${BUILD_FLAGS[@]}" -mod=readonly \
        -ldflags "-s -w -X main.version=${PULUMI_LANGHOST_SDK_VERSION#v}" -o "$BIN/.pulumi-language-python.tmp" .)
    COMPILE_MS=$((COMPILE_MS + $(date +%s%3N) - t0))
    mv -f "$BIN/.pulumi-language-python.tmp" "$BIN/pulumi-language-python"
}
# The pin is the shim's source itself, so any change to it rebuilds the binary.
SHIM_SUM="$(cd "$SHIM_DIR" && for f in go.mod go.sum *.go; do [[ $f == *_test.go ]] || cat "$f"; done |
    sha256sum | cut -c1-16)"

# 1c. Scripts shipped in sdk/v3 at the Python SDK's version.

copy_sdk_file() { # RELATIVE_PATH NAME
    local dir
    dir="$(mod_dir "$PULUMI_SDK@$PULUMI_PYTHON_SDK_GO_VERSION")"
    [[ -f "$dir/$1" ]] || fail "$1 not found in $PULUMI_SDK@$PULUMI_PYTHON_SDK_GO_VERSION"
    install -m 0755 "$dir/$1" "$BIN/.$2.tmp"
    mv -f "$BIN/.$2.tmp" "$BIN/$2"
}
build_pulumi_language_python_exec() { copy_sdk_file python/cmd/pulumi-language-python-exec pulumi-language-python-exec; }
build_pulumi_resource_pulumi_python() { copy_sdk_file python/dist/pulumi-resource-pulumi-python pulumi-resource-pulumi-python; }

# ---------------------------------------------------------------------------------------------
# 2. pulumi-resource-kubernetes

K8S_PROV=github.com/pulumi/pulumi-kubernetes/provider/v4
build_pulumi_resource_kubernetes() {
    local w="$WORK/pulumi-kubernetes" src cmd
    new_wrapper "$w" kube-audit.local/toolchain/pulumi-kubernetes
    src="$w/provider"
    cmd="$src/cmd/pulumi-resource-kubernetes"
    # The module zip lacks the gitignored schema-embed.json / terraform-mapping-embed.json that
    # main.go embeds. `go generate` (generate.go) makes them from schema.json and
    # terraform-mapping.json, setting the schema's version from $VERSION. Do it in a copy.
    cp -R "$(mod_dir "$K8S_PROV@$PULUMI_KUBERNETES_PROVIDER_MODULE_VERSION")" "$src"
    chmod -R u+w "$src"
    # The copy's replace sdk/v4 => ../sdk points outside the module zip; the published sdk/v4
    # it requires is what a wrapper build uses anyway.
    (cd "$src" && run go mod edit -dropreplace=github.com/pulumi/pulumi-kubernetes/sdk/v4)
    (cd "$src" && run env VERSION="$PULUMI_KUBERNETES_PLUGIN_VERSION" go generate ./cmd/pulumi-resource-kubernetes)
    [[ -s "$cmd/schema-embed.json" && -s "$cmd/terraform-mapping-embed.json" ]] ||
        fail "go generate did not write schema-embed.json / terraform-mapping-embed.json"
    grep -q "\"version\":\"$PULUMI_KUBERNETES_PLUGIN_VERSION\"" "$cmd/schema-embed.json" ||
        fail "schema-embed.json does not carry version $PULUMI_KUBERNETES_PLUGIN_VERSION"
    (cd "$w" && run go mod edit -require="$K8S_PROV@$PULUMI_KUBERNETES_PROVIDER_MODULE_VERSION" \
        -replace="$K8S_PROV=./provider")
    copy_remote_replaces "$src/go.mod" "$w" "$K8S_PROV@$PULUMI_KUBERNETES_PROVIDER_MODULE_VERSION"
    write_tools "$w" "$K8S_PROV/cmd/pulumi-resource-kubernetes"
    tidy "$w"
    gobuild "$w" pulumi-resource-kubernetes "$K8S_PROV/cmd/pulumi-resource-kubernetes" \
        "-X $K8S_PROV/pkg/version.Version=$PULUMI_KUBERNETES_PLUGIN_VERSION"
}

# ---------------------------------------------------------------------------------------------
# 4. kube-apiserver

# k8s_wrapper DIR PKG: a wrapper module requiring k8s.io/kubernetes at the pin, tools.go = PKG.
k8s_wrapper() {
    local w=$1 pkg=$2 gomod staging_ver old oldv new newv n=0
    new_wrapper "$w" "kube-audit.local/toolchain/$(basename "$w")"
    gomod="$(mod_gomod "k8s.io/kubernetes@$KUBERNETES_VERSION")"
    staging_ver="v0.${KUBERNETES_VERSION#v1.}"
    (cd "$w" && run go mod edit -require="k8s.io/kubernetes@$KUBERNETES_VERSION")
    # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with
    # ./staging/src/k8s.io/*; point each at its published v0.<minor>.<patch> instead.
    while IFS='|' read -r old oldv new newv; do
        [[ -n "$old" ]] || continue
        case "$new" in
            ./staging/src/*)
                (cd "$w" && run go mod edit -replace="$old=$old@$staging_ver")
                n=$((n + 1)) ;;
            *) fail "unexpected local replace in k8s.io/kubernetes go.mod: $old => $new" ;;
        esac
    done < <(replace_lines "$gomod" local)
    ((n > 0)) || fail "found no staging replaces in $gomod"
    log "  replaced $n k8s.io staging modules with $staging_ver"
    copy_remote_replaces "$gomod" "$w" "k8s.io/kubernetes@$KUBERNETES_VERSION"
    write_tools "$w" "$pkg"
    tidy "$w"
}

# k8s_ldflags: the version stamps `kubectl version`-style tools read (kubeadm checks them).
k8s_ldflags() {
    local major minor rest bdate ld="" p
    IFS=. read -r major minor rest <<<"${KUBERNETES_VERSION#v}"
    bdate="$(mod_time "k8s.io/kubernetes@$KUBERNETES_VERSION")"
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ld+=" -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
        ld+=" -X $p.gitTreeState=clean -X $p.buildDate=$bdate"
    done
    printf '%s' "$ld"
}

build_kube_apiserver() {
    k8s_wrapper "$WORK/kubernetes" k8s.io/kubernetes/cmd/kube-apiserver
    gobuild "$WORK/kubernetes" kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$(k8s_ldflags)"
}
# kubeadm from the same module and pin: regenerates manifests as `kubeadm upgrade` does (issue #9's proof).
build_kubeadm() {
    k8s_wrapper "$WORK/kubeadm" k8s.io/kubernetes/cmd/kubeadm
    gobuild "$WORK/kubeadm" kubeadm k8s.io/kubernetes/cmd/kubeadm "$(k8s_ldflags)"
}

# ---------------------------------------------------------------------------------------------
# 5. etcd + etcdctl (one wrapper; etcd's modules replace each other with ../ paths, and each
#    requires its siblings at the same release, so requiring the release is enough)

etcd_wrapper() {
    local w="$WORK/etcd"
    if [[ -f "$w/.pin" && "$(cat "$w/.pin")" == "$ETCD_VERSION" ]]; then
        return 0
    fi
    new_wrapper "$w" kube-audit.local/toolchain/etcd
    (cd "$w" && run go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" "go.etcd.io/etcd/etcdctl/v3@$ETCD_VERSION")
    write_tools "$w" go.etcd.io/etcd/server/v3 go.etcd.io/etcd/etcdctl/v3
    tidy "$w"
    printf '%s\n' "$ETCD_VERSION" >"$w/.pin"
}
build_etcd() {
    etcd_wrapper
    gobuild "$WORK/etcd" etcd go.etcd.io/etcd/server/v3 \
        "-X go.etcd.io/etcd/api/v3/version.GitSHA=go-module-$ETCD_VERSION"
}
build_etcdctl() {
    etcd_wrapper
    gobuild "$WORK/etcd" etcdctl go.etcd.io/etcd/etcdctl/v3 \
        "-X go.etcd.io/etcd/api/v3/version.GitSHA=go-module-$ETCD_VERSION"
}

# ---------------------------------------------------------------------------------------------
# 6. helm v3

build_helm() {
    local w="$WORK/helm" cg maj min
    new_wrapper "$w" kube-audit.local/toolchain/helm
    (cd "$w" && run go get "helm.sh/helm/v3@$HELM_VERSION")
    copy_remote_replaces "$(mod_gomod "helm.sh/helm/v3@$HELM_VERSION")" "$w" "helm.sh/helm/v3@$HELM_VERSION"
    write_tools "$w" helm.sh/helm/v3/cmd/helm
    tidy "$w"
    # As helm's Makefile: version, and the Kubernetes version capabilities from client-go.
    cg="$(cd "$w" && go list -m -f '{{.Version}}' k8s.io/client-go)"
    cg="${cg#v}"
    maj=$((${cg%%.*} + 1))
    min="$(cut -d. -f2 <<<"$cg")"
    gobuild "$w" helm helm.sh/helm/v3/cmd/helm \
        "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.metadata= -X helm.sh/helm/v3/internal/version.gitTreeState=clean -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$maj -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$min -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$maj -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$min"
}

# ---------------------------------------------------------------------------------------------
# The builds, in two lanes at once. On 2 cores each `go build -p 2` already uses both while it compiles,
# but a cold build also waits on downloads, `go mod tidy` and single-threaded links: the other lane's
# compile fills that time. Both lanes share one module cache and one build cache (Go locks them), and
# two large links at once stay well under this machine's memory (~3 GiB each).
ORDER=(pulumi pulumi-language-python-legacy pulumi-language-python pulumi-language-python-exec pulumi-resource-pulumi-python pulumi-resource-kubernetes kube-apiserver kubeadm etcd etcdctl helm)
lane_pulumi() {
    LANE_SUBSHELL=$BASH_SUBSHELL
    unit pulumi "$PULUMI_PKG@$PULUMI_CLI_VERSION recipe=$TOOLCHAIN_RECIPE" build_pulumi
    unit pulumi-language-python-legacy "$PULUMI_SDK@$PULUMI_LANGHOST_SDK_VERSION recipe=$TOOLCHAIN_RECIPE" \
        build_pulumi_language_python_legacy
    unit pulumi-language-python "langhost-shim@$SHIM_SUM over $PULUMI_LANGHOST_SDK_VERSION recipe=$TOOLCHAIN_RECIPE" \
        build_pulumi_language_python
    unit pulumi-language-python-exec "$PULUMI_SDK@$PULUMI_PYTHON_SDK_GO_VERSION:python/cmd recipe=$TOOLCHAIN_RECIPE" \
        build_pulumi_language_python_exec
    unit pulumi-resource-pulumi-python "$PULUMI_SDK@$PULUMI_PYTHON_SDK_GO_VERSION:python/dist recipe=$TOOLCHAIN_RECIPE" \
        build_pulumi_resource_pulumi_python
    unit pulumi-resource-kubernetes \
        "$K8S_PROV@$PULUMI_KUBERNETES_PROVIDER_MODULE_VERSION as $PULUMI_KUBERNETES_PLUGIN_VERSION recipe=$TOOLCHAIN_RECIPE" \
        build_pulumi_resource_kubernetes
}
lane_cluster() {
    LANE_SUBSHELL=$BASH_SUBSHELL
    unit kube-apiserver "k8s.io/kubernetes@$KUBERNETES_VERSION recipe=$TOOLCHAIN_RECIPE" build_kube_apiserver
    unit kubeadm "k8s.io/kubernetes@$KUBERNETES_VERSION recipe=$TOOLCHAIN_RECIPE" build_kubeadm
    unit etcd "go.etcd.io/etcd/server/v3@$ETCD_VERSION recipe=$TOOLCHAIN_RECIPE" build_etcd
    unit etcdctl "go.etcd.io/etcd/etcdctl/v3@$ETCD_VERSION recipe=$TOOLCHAIN_RECIPE" build_etcdctl
    unit helm "helm.sh/helm/v3@$HELM_VERSION recipe=$TOOLCHAIN_RECIPE" build_helm
}
rm -rf "$RESULTS" && mkdir -p "$RESULTS"
lane_pulumi & pulumi_lane=$!
lane_cluster & cluster_lane=$!
lanes_ok=1
wait "$pulumi_lane" || lanes_ok=0
wait "$cluster_lane" || lanes_ok=0
((lanes_ok)) || { CURRENT_LOG=""; fail "a build lane failed (its step and log are printed above)"; }

# ---------------------------------------------------------------------------------------------
# Summary

CURRENT_STEP="summary"
trap - ERR
set +e

# Version of a Pulumi provider plugin as the engine sees it: its schema's "version".
plugin_schema_version() {
    PULUMI_SKIP_UPDATE_CHECK=true PULUMI_HOME="$CACHE_ROOT/pulumi-home" \
        "$BIN/pulumi" package get-schema "$BIN/$1" 2>/dev/null |
        python3 -c 'import json,sys; print("schema version " + json.load(sys.stdin)["version"])' 2>/dev/null ||
        echo "(could not read schema)"
}

version_line() {
    local b="$BIN/$1"
    case "$1" in
        pulumi) PULUMI_SKIP_UPDATE_CHECK=true "$b" version ;;
        pulumi-language-python-legacy) echo "host from $PULUMI_SDK@$PULUMI_LANGHOST_SDK_VERSION (no --version flag)" ;;
        pulumi-language-python) echo "kube-audit shim over pulumi-language-python-legacy" ;;
        pulumi-language-python-exec | pulumi-resource-pulumi-python)
            echo "script from $PULUMI_SDK@$PULUMI_PYTHON_SDK_GO_VERSION" ;;
        pulumi-resource-*) plugin_schema_version "$1" ;;
        kube-apiserver) "$b" --version ;;
        kubeadm) "$b" version -o short ;;
        etcd) "$b" --version | head -n 1 ;;
        etcdctl) "$b" version | head -n 1 ;;
        helm) "$b" version --short ;;
        *) echo "?" ;;
    esac 2>&1 | head -n 1
}

{
    printf '\nbin dir: %s\n\n' "$BIN"
    printf '%-30s %-7s %8s %8s %8s  %s\n' BINARY STATE SECONDS FETCH GO-BUILD VERSION
    for name in "${ORDER[@]}"; do
        read -r state secs fetch build <"$RESULTS/$name"
        printf '%-30s %-7s %8s %8s %8s  %s\n' "$name" "$state" "$secs" "$fetch" "$build" "$(version_line "$name")"
    done
    printf '%-30s %-7s %8s  (wall clock; the lanes overlap)\n' all "" "$(seconds $(($(date +%s%3N) - T_START)))"
    # shellcheck disable=SC2016  # $PATH is meant literally
    printf '\nUse: export PATH="%s:$PATH" PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true\n' "$BIN"
}
exit 0
