#!/usr/bin/env bash
# test_mnemod.sh -- the daemon's spine against a real PostgreSQL: two daemons, one leader;
# a new report wakes the leader (NOTIFY); kill -9 of the leader and the other takes over;
# SIGHUP with a broken config keeps the old one, with a good one reloads it; a schedule that
# fires; SIGTERM stops it with exit 0; a bad schedule is refused at start.  Every wait is a
# poll with a deadline, not a sleep.
set -euo pipefail
ctl=$1
mnemod=$2
admin=$(cat "$MNEMO_TEST_PG_FILE")
db=t_mnemod_$$
tmp=$(mktemp -d /tmp/mnemo-test-mnemod-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  psql "$admin" -qc "drop database if exists $db with (force)" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$tmp"/*.log; do echo "== $f" >&2; cat "$f" >&2; done
  exit 1
}
# until_log FILE PATTERN [SECONDS]: wait for a line matching PATTERN
until_log() {
  local deadline=$((SECONDS + ${3:-20}))
  until grep -q "$2" "$1" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.05
  done
}
unset MNEMO_CONFIG
psql "$admin" -qc "create database $db"
export MNEMO_DB="$admin dbname=$db"
"$ctl" migrate >/dev/null 2>&1
"$ctl" lang add spa --script Latn >/dev/null

printf 'log:\n  level: info\n' >"$tmp/a.yaml"
"$mnemod" --config "$tmp/a.yaml" 2>"$tmp/a.log" &
pids+=($!)
a=$!
until_log "$tmp/a.log" 'msg=leader' || fail "the first daemon did not lead"
"$mnemod" --config "$tmp/a.yaml" 2>"$tmp/b.log" &
pids+=($!)
b=$!
until_log "$tmp/b.log" 'msg="waiting for leadership"' || fail "the second daemon did not wait"
grep -q 'msg=leader' "$tmp/b.log" && fail "two leaders"

# a new report wakes the leader, not the one waiting
"$ctl" report --lang spa --text "una frase rara" >/dev/null
until_log "$tmp/a.log" 'msg=wake.*channel=mnemo_reports' || fail "no wake-up on a new report"
grep -q 'msg=wake' "$tmp/b.log" && fail "the standby daemon was woken"

# SIGHUP: a broken config is refused and the old one stays; a good one is taken
printf 'schedule:\n  refresh: "61 * * * *"\n' >"$tmp/a.yaml"
kill -HUP "$a"
until_log "$tmp/a.log" 'config reload failed' || fail "a broken config was not refused"
printf 'schedule:\n  refresh: "* * * * *"\n' >"$tmp/a.yaml"
kill -HUP "$a"
until_log "$tmp/a.log" 'msg="config reloaded".*schedule="\* \* \* \* \*"' || fail "no reload"
until_log "$tmp/a.log" 'msg="refresh due"' 70 || fail "the schedule did not fire"

# kill -9 of the leader: the other takes over, and is the one woken now
kill -9 "$a"
until_log "$tmp/b.log" 'msg=leader' || fail "the standby did not take over"
"$ctl" report --lang spa --text "otra frase" >/dev/null
until_log "$tmp/b.log" 'msg=wake.*channel=mnemo_reports' || fail "the new leader was not woken"

# SIGTERM: exit 0
kill -TERM "$b"
rc=0
wait "$b" || rc=$?
[ $rc = 0 ] || fail "SIGTERM: exit $rc"
grep -q 'msg="mnemod stopped"' "$tmp/b.log" || fail "no stop line"

# a schedule that is not one: refused at start, naming the field
printf 'schedule:\n  refresh: "0 3 * *"\n' >"$tmp/bad.yaml"
rc=0
"$mnemod" --config "$tmp/bad.yaml" 2>"$tmp/bad.log" || rc=$?
[ $rc = 1 ] && grep -q '4 fields' "$tmp/bad.log" || fail "a bad schedule: rc $rc"
echo "mnemod: 1 passed, 0 failed"
