#!/usr/bin/env bash
# GetSecretValue with authorization + audit (new build) vs without audit (issue-2 build),
# and the axum ceiling, round-robin in one run.
set -u
V='{"name":"bench/read","secret_string":"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234"}'
start() { # BIN PORT POLICYDIR
  local d; d=$(mktemp -d /tmp/acmp.XXXX)
  "$1" server --listen 127.0.0.1:$2 --data-dir $d/data --policy-dir $3 >/dev/null 2>&1 &
  echo "$! $d"
}
read P1 D1 < <(start ${NO_AUDIT_BIN:?build of commit 5d5a256 (before audit)} 18361 ${NO_AUDIT_POLICIES:?policies of that commit})
read P2 D2 < <(start ${AUDIT_BIN:-target/release/coffer} 18362 ${POLICIES:-policies})
CEIL=$(${SHARED_BENCH:-../shared/bench}/build-ceiling.sh); ADDR=127.0.0.1:18081 "$CEIL" >/dev/null 2>&1 & P3=$!
sleep 2
T1=$(cat $D1/data/admin-token); T2=$(cat $D2/data/admin-token)
curl -s -o /dev/null -X POST -H "Authorization: Bearer $T1" -d "$V" http://127.0.0.1:18361/v1/secrets
curl -s -o /dev/null -X POST -H "Authorization: Bearer $T2" -d "$V" http://127.0.0.1:18362/v1/secrets
run() { # LABEL URL PATH TOKEN
  BENCH_METHOD=GET BENCH_PATH=$3 BENCH_AUTH="Authorization: Bearer $4" wrk -t2 -c32 -d2s -s $(dirname "$0")/coffer.lua $2 >/dev/null
  r=$(BENCH_METHOD=GET BENCH_PATH=$3 BENCH_AUTH="Authorization: Bearer $4" wrk -t2 -c32 -d10s -s $(dirname "$0")/coffer.lua $2 | grep RESULT)
  echo "$1 $r"
}
for round in 1 2 3; do
  run ceiling http://127.0.0.1:18081 /hello x
  run get-no-audit http://127.0.0.1:18361 /v1/secrets/bench%2Fread/value $T1
  run get-authz+audit http://127.0.0.1:18362 /v1/secrets/bench%2Fread/value $T2
done
echo "audit records: $(curl -s -H "Authorization: Bearer $T2" 'http://127.0.0.1:18362/v1/audit?max_results=1&order=desc' | head -c 300)"
kill $P1 $P2 $P3; sleep 1; rm -rf $D1 $D2
