#!/usr/bin/env bash
# test_pg.sh -- scripts/pg: start prints a working conninfo, no TCP port, start
# is idempotent, stop stops and is idempotent, --tcp listens on loopback only and asks for
# a password there.
# On this brand-new cluster (no mnemo roles yet), eight databases migrated at
# once must all succeed: roles are cluster-wide, the migration lock is not.
#   test_pg.sh [MNEMOCTL]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d /tmp/mnemo-test-pgscript-XXXXXX)
trap '"$here/scripts/pg" stop "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

chmod 0755 "$dir" # scripts/pg must make it private itself
out=$("$here/scripts/pg" start "$dir")
[ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || fail "start printed more than one line: $out"
[[ $out == "host=$dir port=5432 user=postgres dbname=postgres" ]] || fail "unexpected conninfo: $out"
[ "$(psql "$out" -qAtc 'select 40 + 2')" = 42 ] || fail "conninfo does not connect"
[ -z "$(psql "$out" -qAtc "show listen_addresses")" ] || fail "listens on TCP"
[ "$(stat -c %a "$dir")" = 700 ] || fail "DIR is not private"
out2=$("$here/scripts/pg" start "$dir")
[ "$out2" = "$out" ] || fail "second start printed \"$out2\""
"$here/scripts/pg" status "$dir" || fail "status says not running"

# eight fresh databases migrated at the same moment
if [ -n "${1:-}" ]; then
  pids=()
  for i in 1 2 3 4 5 6 7 8; do psql "$out" -qc "create database race$i"; done
  for i in 1 2 3 4 5 6 7 8; do
    "$1" --db "${out/dbname=postgres/dbname=race$i}" migrate >"$dir/race$i.log" 2>&1 &
    pids+=($!)
  done
  for i in 1 2 3 4 5 6 7 8; do
    wait "${pids[$((i - 1))]}" || fail "migrating race$i in parallel failed: $(cat "$dir/race$i.log")"
  done
fi

"$here/scripts/pg" stop "$dir"
rc=0; "$here/scripts/pg" status "$dir" || rc=$?
[ $rc -eq 3 ] || fail "status after stop exited $rc, want 3"
"$here/scripts/pg" stop "$dir" || fail "second stop failed"
psql "$out" -qAtc 'select 1' >/dev/null 2>&1 && fail "server still answers after stop"

# restart keeps the data
out=$("$here/scripts/pg" start "$dir")
psql "$out" -qc 'create table kept (x int)'
"$here/scripts/pg" stop "$dir"
out=$("$here/scripts/pg" start "$dir")
psql "$out" -qAtc 'select count(*) from kept' >/dev/null || fail "data lost across restart"
"$here/scripts/pg" stop "$dir"

# --tcp: loopback only, on the port asked for
for try in 1 2 3 4 5; do # a random port may be taken: try a few
  port=$((20000 + RANDOM % 20000))
  out=$("$here/scripts/pg" start "$dir" --tcp "$port" 2>/dev/null) && break
  [ "$try" -lt 5 ] || fail "could not start on a TCP port in 5 tries"
done
[ "$(psql "$out" -qAtc 'show listen_addresses')" = 127.0.0.1 ] || fail "--tcp not on loopback"
# TCP asks for a password (the console checks logins there); the socket does not
psql "$out" -qc "create role pw_login login password 'pw-secret'"
tcp="host=127.0.0.1 port=$port dbname=postgres"
! PGPASSWORD= psql "$tcp user=pw_login" -w -qAtc 'select 1' >/dev/null 2>&1 ||
  fail "TCP let a login in without a password"
! PGPASSWORD=wrong psql "$tcp user=pw_login" -qAtc 'select 1' >/dev/null 2>&1 ||
  fail "TCP let a login in with a wrong password"
[ "$(PGPASSWORD=pw-secret psql "$tcp user=pw_login" -qAtc 'select 1')" = 1 ] ||
  fail "no TCP connection on $port with the right password"
"$here/scripts/pg" stop "$dir"

# usage errors
rc=0; "$here/scripts/pg" start 2>/dev/null || rc=$?
[ $rc -eq 2 ] || fail "missing DIR exited $rc, want 2"
rc=0; "$here/scripts/pg" start "/tmp/bad dir" 2>/dev/null || rc=$?
[ $rc -eq 1 ] || fail "a DIR with a space exited $rc, want 1"
echo "scripts/pg: 1 passed, 0 failed"
