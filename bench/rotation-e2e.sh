#!/usr/bin/env bash
# End-to-end time of PostgreSQL password rotations through a release server: the shipped
# `postgres` rotator (single-user) on a throwaway role, N rotations with
# `POST /v1/secrets/{id}/rotate?wait=true`, against, in the same run, N durable
# PutSecretValue calls on the same server (the floor of any rotation: it stores a version
# and moves labels) and N `SELECT 1` logins of the role over TCP with psql (the database's
# own cost of one login, process start included).
#
# usage: bench/rotation-e2e.sh [N=50]
# env:   BENCH_COFFER_BIN (else builds release), PLUGINS_RELEASE (plugins/target/…/release)
# needs: curl, jq, psql, python3; the local PostgreSQL (see scripts/test-databases.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
N=${1:-50}
"$ROOT/scripts/test-databases.sh" >/dev/null
if [[ -n ${BENCH_COFFER_BIN:-} ]]; then COFFER=$BENCH_COFFER_BIN; else
  (cd "$ROOT" && cargo build --release --quiet); COFFER="$ROOT/target/release/coffer"; fi
REL=${PLUGINS_RELEASE:-$ROOT/plugins/target/wasm32-wasip2/release}
[[ -f $REL/coffer_rotator_postgres.wasm ]] || (cd "$ROOT/plugins" && cargo build --release --quiet)

WORK=$(mktemp -d /tmp/coffer-rot-bench.XXXXXX)
ROLE=coffer_t_bench$$
cleanup() { kill "${PID:-0}" 2>/dev/null || true; psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP ROLE IF EXISTS $ROLE" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
mkdir -p "$WORK/plugins/postgres"
cp "$ROOT/plugins/postgres/plugin.toml" "$REL/coffer_rotator_postgres.wasm" "$WORK/plugins/postgres/"
psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE ROLE $ROLE LOGIN PASSWORD 'bench-initial' IN ROLE coffer_rotation_test"

COFFER_LOG_LEVEL=warn "$COFFER" server --listen 127.0.0.1:0 --data-dir "$WORK/data" \
  --policy-dir "$ROOT/policies" --plugin-dir "$WORK/plugins" >"$WORK/out" 2>"$WORK/err" &
PID=$!
for _ in $(seq 100); do grep -q "listening on" "$WORK/out" 2>/dev/null && break; sleep 0.1; done
BASE=$(sed -n 's/^listening on //p' "$WORK/out")
TOKEN=$(cat "$WORK/data/admin-token")
call() { curl -sf -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' "$@"; }
NAME=bench%2Fpg
call -X POST "$BASE/v1/secrets" -d "{\"name\":\"bench/pg\",\"secret_string\":$(jq -Rn --arg r $ROLE '{engine:"postgres",host:"127.0.0.1",port:5432,username:$r,password:"bench-initial",dbname:"postgres"}|tojson')}" >/dev/null
call -X POST "$BASE/v1/secrets" -d '{"name":"bench/plain","secret_string":"x"}' >/dev/null
call -X POST "$BASE/v1/secrets/$NAME/rotation?wait=true" -d '{"plugin":"postgres","config":{"tls":"disable"}}' >/dev/null

timed() { curl -s -o /dev/null -w '%{time_total}\n' -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' "$@"; }
now_ns() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
rot=(); put=(); login=()
for i in $(seq "$N"); do
  rot+=("$(timed -X POST "$BASE/v1/secrets/$NAME/rotate?wait=true" | awk '{print $1*1000}')")
  put+=("$(timed -X PUT "$BASE/v1/secrets/bench%2Fplain/value" -d "{\"secret_string\":\"v$i\"}" | awk '{print $1*1000}')")
  PW=$(call "$BASE/v1/secrets/$NAME/value" | jq -r '.secret_string|fromjson|.password')
  t3=$(now_ns); PGPASSWORD=$PW psql -h 127.0.0.1 -U $ROLE -d postgres -Atqc 'SELECT 1' >/dev/null; t4=$(now_ns)
  login+=("$(echo "($t4 - $t3) / 1000000" | bc -l)")
done
R=$(printf '%s\n' "${rot[@]}" | median); P=$(printf '%s\n' "${put[@]}" | median); L=$(printf '%s\n' "${login[@]}" | median)
echo "| N | rotation p50 ms | PutSecretValue p50 ms | psql login p50 ms | rotation / put | rotation / login |"
echo "|---|---|---|---|---|---|"
printf '| %s | %.1f | %.1f | %.1f | %.1f× | %.1f× |\n' "$N" "$R" "$P" "$L" "$(echo "$R / $P" | bc -l)" "$(echo "$R / $L" | bc -l)"
# The last rotation's audit trail, to show what one rotation did.
call "$BASE/v1/audit?action=RotateSecret&order=desc&max_results=4" | jq -r '.records[] | "\(.action) \(.status) \(.reason // "") trail=\(.trail|length)"' 2>/dev/null || true
