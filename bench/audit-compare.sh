#!/usr/bin/env bash
# What authorization + the audit log cost GetSecretValue (issue 3's target: under 20% of
# throughput). Round-robin in one run, so this machine's noise hits every target alike:
#   ceiling     bare axum hello-world (../shared/bench/build-ceiling.sh)
#   plain       this tree with neither authorization nor the audit log (built here): the
#               core issue's GetSecretValue, the baseline of issue 3's target
#   no-audit    this tree with the audit middleware removed (built here, see below);
#               authorization on, the same policies
#   audit       this tree as it ships: scope-indexed Cedar policies and the fail-closed,
#               hash-chained audit log (every response waits until its record is durable)
#   [others]    EXTRA_BINS="name=path …": more builds to measure alongside (an earlier
#               release, a tuning variant)
# Each case at CONNS connections (default 32) and at 1 connection (latency-bound).
#
# usage: bench/audit-compare.sh [ROUNDS=3]
# env:   AUDIT_BIN      skip building the shipped tree; use this binary
#        NO_AUDIT_BIN   skip building the no-audit variant; use this binary
#        PLAIN_BIN      skip building the plain variant; use this binary
#        EXTRA_BINS     "name=path …", more builds to measure alongside (optional)
#        BENCH_TARGET_DIR  cargo target dir for the no-audit and plain variants (default target/bench-no-audit)
#        CONNS=32 THREADS=2 DURATION=10s WARMUP=2s  SHARED_BENCH=../shared/bench
#        CONN_LIST="32 1" (connection counts to measure; default: CONNS and 1)
# The no-audit variant is HEAD (committed code) in a temporary git worktree with the one
# line that installs the audit middleware deleted; handlers then record into a detached
# draft that nothing writes. Needs wrk, curl, git, cargo. Traffic goes to 127.0.0.1 only.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
ROUNDS=${1:-3}
SHARED_BENCH=${SHARED_BENCH:-$ROOT/../shared/bench}
CONNS=${CONNS:-32}; THREADS=${THREADS:-2}; DURATION=${DURATION:-10s}; WARMUP=${WARMUP:-2s}
for t in wrk curl git cargo; do command -v $t >/dev/null || { echo "missing $t" >&2; exit 1; }; done

WORK=$(mktemp -d /tmp/audit-compare.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 1
  rm -rf "$WORK"
}
trap cleanup EXIT

if [[ -z ${AUDIT_BIN:-} ]]; then
  echo "building the shipped tree (release)…" >&2
  (cd "$ROOT" && cargo build --release --quiet --bin coffer)
  AUDIT_BIN="$ROOT/target/release/coffer"
fi
LAYER='from_fn_with_state(audit, audit::record)'
AUTHZ='let engine = self.policy();'
variant() { # NAME [authz]: build HEAD without the audit layer (and, with authz, without authorization)
  local wt="$WORK/$1-src" target=${BENCH_TARGET_DIR:-$ROOT/target/bench-no-audit}
  echo "building HEAD as $1 (release)…" >&2
  git -C "$ROOT" worktree add --detach --quiet "$wt" HEAD
  grep -q "$LAYER" "$wt/crates/coffer-server/src/lib.rs" || { echo "the audit layer line moved; update $0" >&2; exit 1; }
  sed -i "/$LAYER/d" "$wt/crates/coffer-server/src/lib.rs"
  if [[ ${2:-} == authz ]]; then
    grep -q "$AUTHZ" "$wt/crates/coffer-server/src/auth.rs" || { echo "AppState::authorize changed; update $0" >&2; exit 1; }
    # Every authorization allows, before any policy work is done.
    sed -i "s/$AUTHZ/if std::hint::black_box(true) { return Ok(()); } $AUTHZ/" "$wt/crates/coffer-server/src/auth.rs"
  fi
  # Cargo names workspace crates' artifacts by their path relative to the workspace, so
  # artifacts of another checkout in the same target dir could pass for this one's.
  find "$wt" -name '*.rs' -exec touch {} +
  (cd "$wt" && CARGO_TARGET_DIR=$target cargo build --release --quiet --bin coffer)
  cp "$target/release/coffer" "$WORK/coffer-$1"
  git -C "$ROOT" worktree remove --force "$wt"
}
if [[ -z ${NO_AUDIT_BIN:-} ]]; then variant no-audit; NO_AUDIT_BIN="$WORK/coffer-no-audit"; fi
if [[ -z ${PLAIN_BIN:-} ]]; then variant plain authz; PLAIN_BIN="$WORK/coffer-plain"; fi

V='{"name":"bench/read","secret_string":"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234"}'
declare -A PORT TOKEN
start() { # NAME BIN PORT
  local d="$WORK/$1"
  "$2" server --listen 127.0.0.1:$3 --data-dir "$d/data" --policy-dir "$ROOT/policies" >"$d.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$3/readyz" >/dev/null && break; sleep 0.1; done
  PORT[$1]=$3; TOKEN[$1]=$(cat "$d/data/admin-token")
  curl -sf -o /dev/null -X POST -H "Authorization: Bearer ${TOKEN[$1]}" -d "$V" "http://127.0.0.1:$3/v1/secrets"
}
start no-audit "$NO_AUDIT_BIN" 18361
start audit "$AUDIT_BIN" 18362
start plain "$PLAIN_BIN" 18363
TARGETS=(plain no-audit audit)
port=18364
for nb in ${EXTRA_BINS:-}; do start "${nb%%=*}" "${nb#*=}" $port; TARGETS+=("${nb%%=*}"); port=$((port + 1)); done
CEIL=$("$SHARED_BENCH/build-ceiling.sh"); ADDR=127.0.0.1:18081 "$CEIL" >/dev/null 2>&1 & PIDS+=($!)
sleep 1

run() { # URL PATH TOKEN CONNS -> req/s p50
  local threads=$THREADS; (( $4 < threads )) && threads=$4
  BENCH_METHOD=GET BENCH_PATH=$2 BENCH_AUTH="Authorization: Bearer $3" \
    wrk -t"$threads" -c"$4" -d"$WARMUP" -s "$HERE/coffer.lua" "$1" >/dev/null
  BENCH_METHOD=GET BENCH_PATH=$2 BENCH_AUTH="Authorization: Bearer $3" \
    wrk -t"$threads" -c"$4" -d"$DURATION" --latency -s "$HERE/coffer.lua" "$1" |
    awk '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} END {printf "%d %s\n", rps, p50}'
}
ROWS="$WORK/rows"
for round in $(seq "$ROUNDS"); do
  for c in ${CONN_LIST:-$CONNS 1}; do
    echo "$round $c ceiling $(run http://127.0.0.1:18081 /hello x "$c")" | tee -a "$ROWS" >&2
    for t in "${TARGETS[@]}"; do
      echo "$round $c $t $(run "http://127.0.0.1:${PORT[$t]}" /v1/secrets/bench%2Fread/value "${TOKEN[$t]}" "$c")" | tee -a "$ROWS" >&2
    done
  done
done
records=$(curl -s -H "Authorization: Bearer ${TOKEN[audit]}" "http://127.0.0.1:18362/v1/audit?max_results=1" | grep -o '"seq":[0-9]*' | head -1)
verify=$(curl -s -X POST -H "Authorization: Bearer ${TOKEN[audit]}" "http://127.0.0.1:18362/v1/audit/verify")

# Medians per (connections, target); the cost of authorization + audit against plain (the
# target) and of the audit log alone against no-audit.
python3 - "$ROWS" "${TARGETS[@]}" <<'EOF'
import sys, statistics
def ms(v):
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if v.endswith(unit):
            return float(v[: -len(unit)]) * f
    return float("nan")
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
targets = ["ceiling"] + sys.argv[2:]
print("| connections | target | req/s (median) | p50 (median) | vs plain | vs no-audit |")
print("|---|---|---|---|---|---|")
for c in sorted({r[1] for r in rows}, key=int, reverse=True):
    med = {}
    for t in targets:
        rs = [int(r[3]) for r in rows if r[1] == c and r[2] == t]
        ps = [ms(r[4]) for r in rows if r[1] == c and r[2] == t]
        if not rs:
            continue
        med[t] = statistics.median(rs)
        def vs(base):
            b = med.get(base)
            return "" if t in ("ceiling", base) or not b else f"{(med[t] / b - 1) * 100:+.1f}%"
        print(f"| {c} | {t} | {med[t]:,.0f} | {statistics.median(ps):.2f} ms | {vs('plain')} | {vs('no-audit')} |")
EOF
echo "audit log after the run: newest $records; verify: $verify"
