#!/usr/bin/env bash
# Prepares the local PostgreSQL and MariaDB for the rotation tests. Idempotent; run by
# .ci/run and, once per test binary, by tests/common/db.rs.
#
# The local PostgreSQL trusts every loopback login, so a successful login would prove
# nothing about a password. Test roles are members of the group role
# `coffer_rotation_test`, and a `scram-sha-256` rule for that group is put ahead of the
# trust rules, so those roles (and the `_clone` roles the alternating-users strategy
# creates, which inherit the membership) must present their password.
set -euo pipefail

PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
psql_admin() { psql -h "$PGHOST" -p "$PGPORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -Atq "$@"; }

psql_admin -c "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'coffer_rotation_test') THEN
    CREATE ROLE coffer_rotation_test NOLOGIN;
  END IF; END \$\$;" 2>/dev/null || true
# (a concurrent creator may win the race; the check below is what counts)
psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = 'coffer_rotation_test'" | grep -qx 1

hba=$(psql_admin -c "SHOW hba_file")
rule="host all +coffer_rotation_test 127.0.0.1/32 scram-sha-256"
if ! grep -qxF "$rule" "$hba"; then
  tmp=$(mktemp)
  { echo "# coffer rotation tests: members of coffer_rotation_test must use their password"
    echo "$rule"
    echo "host all +coffer_rotation_test ::1/128 scram-sha-256"
    cat "$hba"; } >"$tmp"
  cat "$tmp" >"$hba"   # keep the file's owner and mode
  rm -f "$tmp"
  psql_admin -c "SELECT pg_reload_conf()" >/dev/null
  sleep 0.5
fi

# Prove the rule works: a member with a password must be refused with a wrong one.
probe="coffer_rotation_probe"
psql_admin -c "DROP ROLE IF EXISTS $probe; CREATE ROLE $probe LOGIN PASSWORD 'right-password' IN ROLE coffer_rotation_test" >/dev/null 2>&1 || true
if PGPASSWORD=wrong-password psql -h "$PGHOST" -p "$PGPORT" -U "$probe" -d postgres -Atqc "SELECT 1" >/dev/null 2>&1; then
  echo "test-databases: PostgreSQL accepted a wrong password for a test role; check $hba" >&2
  exit 1
fi
PGPASSWORD=right-password psql -h "$PGHOST" -p "$PGPORT" -U "$probe" -d postgres -Atqc "SELECT 1" >/dev/null

# MariaDB: users created with a password must use it; just check it answers.
mariadb -h 127.0.0.1 -P 3306 -u root -e "SELECT 1" >/dev/null
echo "test-databases: PostgreSQL scram rule active, MariaDB reachable"
