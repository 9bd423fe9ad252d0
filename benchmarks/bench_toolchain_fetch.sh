#!/usr/bin/env bash
# What a cold toolchain build spends downloading, per binary: every module each wrapper module of
# scripts/toolchain.sh needs, fetched into an EMPTY module cache (a temp dir, removed afterwards), timed.
#
#     bash benchmarks/bench_toolchain_fetch.sh
#
# Needs a toolchain built once (its wrapper modules under ~/.cache/kube-audit/toolchain/work). Prints
# (only the modules that provide packages the build imports: `go list -deps`) seconds and MiB per wrapper, then the sum; the compile share of a binary is its build time in
# toolchain.sh's summary minus this. Downloads only: no compile, light on CPU. Modules shared by two
# wrappers are fetched twice here (each wrapper gets its own empty cache), as each would be alone;
# toolchain.sh itself shares one module cache, so the sum here bounds its download time from above.
set -euo pipefail
work="${KUBE_AUDIT_CACHE:-$HOME/.cache/kube-audit}/toolchain/work"
[[ -d "$work" ]] || { echo "no wrapper modules in $work: run scripts/toolchain.sh once" >&2; exit 2; }
printf '%-28s %9s %9s\n' WRAPPER SECONDS MIB
total_s=0
for gomod in "$work"/*/go.mod "$work"/*/provider/go.mod; do
    [[ -f "$gomod" ]] || continue
    dir=$(dirname "$gomod")
    cache=$(mktemp -d)
    t0=$(date +%s%3N)
    (cd "$dir" && GOFLAGS=-mod=mod GOMODCACHE="$cache" GOTOOLCHAIN=local GOWORK=off go list -e -deps -tags tools ./... >/dev/null 2>&1) ||
        echo "  (go mod download reported an error in $dir)" >&2
    t1=$(date +%s%3N)
    mib=$(du -sm "$cache" | cut -f1)
    chmod -R u+w "$cache" && rm -rf "$cache"
    secs=$(awk -v ms=$((t1 - t0)) 'BEGIN { printf "%.1f", ms / 1000 }')
    total_s=$(awk -v a="$total_s" -v b="$secs" 'BEGIN { printf "%.1f", a + b }')
    printf '%-28s %9s %9s\n' "${dir#"$work"/}" "$secs" "$mib"
done
printf '%-28s %9s\n' "sum" "$total_s"
