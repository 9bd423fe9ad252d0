#!/usr/bin/env bash
# The test command: sets everything up on a fresh machine, then runs every tier
# (lint, unit + property, sshd integration, parity, kubelet decoder, real-engine end-to-end against the
# local lab) and prints where the time went (benchmarks/bench_suite_time.py).
#
#   scripts/test.sh               two lanes at once: the lab tier (e2e) in the foreground, everything that
#                                 needs no lab (ruff, mypy, the strict docs build, the other tiers) beside it on the second core,
#                                 niced so the lab's timeouts are not what it slows down
#   scripts/test.sh ARGS...       one pytest run with ARGS, e.g. `scripts/test.sh -m "not e2e"`
#
# Junit reports and the fast lane's log go to $KUBE_AUDIT_TEST_REPORTS (default .build/test-reports).
set -euo pipefail
cd "$(dirname "$0")/.."
t_start=$(date +%s)
bash scripts/setup.sh
t_setup=$(( $(date +%s) - t_start ))

reports=${KUBE_AUDIT_TEST_REPORTS:-.build/test-reports}
rm -rf "$reports" && mkdir -p "$reports"
py=.venv/bin/python
common=(-ra -p no:cacheprovider)

if (($#)); then
  .venv/bin/ruff check .
  .venv/bin/mypy
  bash scripts/docs.sh
  set +e
  "$py" -m pytest "${common[@]}" --junitxml="$reports/run.xml" "$@"
  rc=$?
  set -e
  "$py" benchmarks/bench_suite_time.py "$reports/run.xml" --wall "setup=$t_setup" \
    --wall "whole run=$(( $(date +%s) - t_start ))"
  exit "$rc"
fi

fast_lane() {
  local t0 rc=0
  t0=$(date +%s)
  .venv/bin/ruff check . || rc=1
  .venv/bin/mypy || rc=1
  bash scripts/docs.sh || rc=1
  "$py" -m pytest "${common[@]}" -m "not e2e" --durations=15 --junitxml="$reports/fast.xml" || rc=1
  echo "$(( $(date +%s) - t0 ))" > "$reports/fast.seconds"
  return "$rc"
}

fast_log="$reports/fast-lane.log"
echo "[test] fast lane (ruff, mypy, docs build, every tier but e2e) runs beside the lab tier; its log: $fast_log"
( renice -n 10 "$BASHPID" >/dev/null; fast_lane ) >"$fast_log" 2>&1 &
fast_pid=$!

t_lab=$(date +%s)
set +e
"$py" -m pytest "${common[@]}" -m e2e --durations=30 --junitxml="$reports/e2e.xml"
lab_rc=$?
wait "$fast_pid"
fast_rc=$?
set -e
t_lab=$(( $(date +%s) - t_lab ))

echo
echo "================================ fast lane (ran beside the lab tier) ================================"
cat "$fast_log"
echo
echo "================================ where the time went ================================"
"$py" benchmarks/bench_suite_time.py "$reports/fast.xml" "$reports/e2e.xml" --wall "setup=$t_setup" \
  --wall "fast lane=$(cat "$reports/fast.seconds" 2>/dev/null || echo 0)" --wall "lab lane=$t_lab" \
  --wall "whole run=$(( $(date +%s) - t_start ))"
if ((lab_rc != 0 || fast_rc != 0)); then
  echo "[test] FAILED: lab lane exit $lab_rc, fast lane exit $fast_rc"
  exit 1
fi
