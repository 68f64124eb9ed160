#!/usr/bin/env bash
# test_mnemod.sh -- the daemon's spine against a real PostgreSQL: two daemons, one leader;
# a new report wakes the leader (NOTIFY); kill -9 of the leader and the other takes over;
# SIGHUP with a broken config keeps the old one, with a good one reloads it; a schedule that
# fires; SIGTERM stops it with exit 0; a bad schedule and a missing or unreadable database
# are refused at start; --version and
# --help exit 0, an unknown option 2.  Every wait is a
# poll with a deadline, not a sleep.
#
# Reload, whole or not at all (issue 17): webhooks added by SIGHUP deliver; a bad webhook
# secret on SIGHUP is refused and the running webhooks go on delivering; a good config after
# it applies; webhooks removed by SIGHUP stop; the triage thread that could not start is
# started by the next reload; daemon.data_dir (not reloadable) keeps its value with one
# warning naming it.  `mnemoctl config check` and mnemod refuse the same files (one
# validator), each naming file:line:col.
set -euo pipefail
ctl=$1
mnemod=$2
here=$(cd "$(dirname "$0")" && pwd)
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
# lines FILE: how many lines FILE has now (a mark for since)
lines() { wc -l <"$1"; }
# since FILE MARK PATTERN [SECONDS]: wait for a line matching PATTERN after line MARK
since() {
  local deadline=$((SECONDS + ${4:-20}))
  until tail -n +$(($2 + 1)) "$1" | grep "$3" >/dev/null; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.05
  done
}
sql() { psql "$MNEMO_DB" -XAtqc "$1"; }
# event: an event with a webhook (as mnemo.log_event writes them); prints its id
event() { sql "select mnemo.log_event('job_failed', null, null, '{\"test\": \"$1\"}')"; }
# delivered ID: the receiver got evt_ID, signed correctly, and answered 200
delivered() { grep -q "\"id\": \"evt_$1\", .*\"valid\": true, \"status\": 200" "$tmp/hooks.jsonl"; }
until_delivered() {
  local deadline=$((SECONDS + 20))
  until delivered "$1"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.05
  done
}
unset MNEMO_CONFIG
# --version and --help answer without a database, exit 0
"$mnemod" --version >"$tmp/version" || fail "mnemod --version failed"
grep -q "^mnemod [0-9]" "$tmp/version" || fail "mnemod --version: $(cat "$tmp/version")"
"$mnemod" --help >"$tmp/help" || fail "mnemod --help failed"
grep -q "^usage: mnemod .*--version" "$tmp/help" || fail "mnemod --help: $(cat "$tmp/help")"
rc=0
"$mnemod" --bogus 2>/dev/null || rc=$?
[ $rc = 2 ] || fail "mnemod --bogus exited $rc, want 2"
psql "$admin" -qc "create database $db"
export MNEMO_DB="$admin dbname=$db"
"$ctl" migrate >/dev/null 2>&1
"$ctl" lang add spa --script Latn >/dev/null

# one validator: config check refuses what mnemod refuses, both naming file:line:col
secret=whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
refused() { # refused NAME YAML WHERE WHAT: config check and mnemod's start both refuse it
  printf '%b' "$2" >"$tmp/$1.yaml"
  local rc=0
  "$ctl" config check "$tmp/$1.yaml" >"$tmp/$1.out" 2>&1 || rc=$?
  [ $rc = 1 ] && grep -qF "$tmp/$1.yaml:$3: key $4" "$tmp/$1.out" ||
    fail "config check of $1 (exit $rc): $(cat "$tmp/$1.out")"
  rc=0
  timeout 10 "$mnemod" --config "$tmp/$1.yaml" 2>"$tmp/$1.start" || rc=$?
  [ $rc = 78 ] && grep -qF "$tmp/$1.yaml:$3: key $4" "$tmp/$1.start" ||
    fail "mnemod started on $1 (exit $rc): $(cat "$tmp/$1.start")"
}
refused minute 'schedule:\n  refresh: "61 * * * *"\n' 2:12 '"schedule.refresh": schedule "61 * * * *"'
refused step0 'schedule:\n  refresh: "*/0 * * * *"\n' 2:12 '"schedule.refresh": schedule "*/0 * * * *"'
refused feb30 'schedule:\n  refresh: "0 0 30 2 *"\n' 2:12 '"schedule.refresh": schedule "0 0 30 2 *": the schedule never fires'
refused nonb64 "webhooks:\n  url: http://127.0.0.1:9/\n  secret: whsec_!!!!AwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n" \
  3:11 '"webhooks.secret": the webhook secret is not valid base64'
refused file "webhooks:\n  url: file:///etc/passwd\n  secret: $secret\n" 2:8 '"webhooks.url": webhook URL "file:///etc/passwd": only http:// and https://'
refused nosecret 'webhooks:\n  url: http://127.0.0.1:9/\n' 2:8 '"webhooks.url": webhooks are signed'
grep -q '!!!!' "$tmp/nonb64.out" "$tmp/nonb64.start" && fail "a webhook secret was echoed"

# a Standard Webhooks receiver (checks signatures with Python's hmac)
python3 "$here/webhook_receiver.py" "$tmp/hooks.port" "$tmp/hooks.jsonl" "$secret" 0 &
pids+=($!)
until_log "$tmp/hooks.port" . || fail "the webhook receiver did not start"
hook_url=http://127.0.0.1:$(cat "$tmp/hooks.port")/hooks
touch "$tmp/hooks.jsonl"

# the first daemon starts without webhooks, and its data folder cannot be made (a file is
# where its parent should be): report triage cannot start
touch "$tmp/blocked"
printf 'log:\n  level: info\ndaemon:\n  data_dir: %s\n' "$tmp/blocked/data" >"$tmp/a.yaml"
"$mnemod" --config "$tmp/a.yaml" 2>"$tmp/a.log" &
pids+=($!)
a=$!
until_log "$tmp/a.log" 'msg=leader' || fail "the first daemon did not lead"
until_log "$tmp/a.log" 'msg="report triage is off"' || fail "triage started in a file"
"$mnemod" --config "$tmp/a.yaml" 2>"$tmp/b.log" &
pids+=($!)
b=$!
until_log "$tmp/b.log" 'msg="waiting for leadership"' || fail "the second daemon did not wait"
grep -q 'msg=leader' "$tmp/b.log" && fail "two leaders"
# mnemoctl status names the leader by its own pid, not its database backend's
"$ctl" status >"$tmp/status.txt"
grep -q "^leader: mnemod pid $a on " "$tmp/status.txt" || fail "status: $(head -1 "$tmp/status.txt"), want pid $a"

# a new report wakes the leader, not the one waiting
"$ctl" report --lang spa --text "una frase rara" >/dev/null
until_log "$tmp/a.log" 'msg=wake.*channel=mnemo_reports' || fail "no wake-up on a new report"
grep -q 'msg=wake' "$tmp/b.log" && fail "the standby daemon was woken"

# SIGHUP adds webhooks: they start, and deliver what waited in the outbox; the triage thread
# that could not start before is started now that its folder can be made
e1=$(event added)
[ "$(sql "select state from mnemo.outbox where event_id = $e1")" = pending ] || fail "no outbox row"
rm "$tmp/blocked"
mkdir "$tmp/blocked"
good() { # good [SCHEDULE]: webhooks on, the data folder as at start
  printf 'log: {level: info}\ndaemon: {data_dir: %s}\nschedule: {refresh: "%s"}\n' \
    "$tmp/blocked/data" "${1:-}" >"$tmp/a.yaml"
  printf 'webhooks:\n  url: %s\n  secret: %s\n' "$hook_url" "$secret" >>"$tmp/a.yaml"
}
good
mark=$(lines "$tmp/a.log")
kill -HUP "$a"
until_delivered "$e1" || fail "webhooks added by SIGHUP did not deliver"
since "$tmp/a.log" "$mark" 'msg="config reloaded".*webhooks=true triage=true' ||
  fail "the reload did not start webhooks and triage"
[ -d "$tmp/blocked/data/triage" ] || fail "the triage thread was not started by the reload"

# SIGHUP with a webhook secret that is not base64: refused whole, naming file:line:col; the
# running webhooks go on delivering
printf 'log: {level: debug}\nwebhooks:\n  url: %s\n  secret: whsec_!!!!AwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n' \
  "$hook_url" >"$tmp/a.yaml"
mark=$(lines "$tmp/a.log")
kill -HUP "$a"
since "$tmp/a.log" "$mark" "config reload failed.*$tmp/a.yaml:4:11: key .*webhooks.secret.*not valid base64" ||
  fail "a bad webhook secret was not refused: $(tail -n +$((mark + 1)) "$tmp/a.log")"
e2=$(event after-bad)
until_delivered "$e2" || fail "webhooks stopped after a refused reload"
tail -n +$((mark + 1)) "$tmp/a.log" | grep level=debug >/dev/null && fail "part of a refused config was applied"

# the good file again, with another data folder: reloaded, webhooks deliver; daemon.data_dir
# is not reloadable: it keeps its value, and one warning names it
good "* * * * *"
sed -i "s|data_dir: $tmp/blocked/data|data_dir: $tmp/elsewhere|" "$tmp/a.yaml"
mark=$(lines "$tmp/a.log")
kill -HUP "$a"
since "$tmp/a.log" "$mark" 'msg="config reloaded".*schedule="\* \* \* \* \*".*webhooks=true' ||
  fail "the good config after a bad one was not taken"
e3=$(event good-again)
until_delivered "$e3" || fail "webhooks did not deliver after the good config came back"
warned=$(tail -n +$((mark + 1)) "$tmp/a.log" | grep 'msg="config key not reloaded' || true)
[ "$(grep -c . <<<"$warned")" = 1 ] && grep -q 'key=daemon.data_dir' <<<"$warned" ||
  fail "want one warning naming daemon.data_dir, got: $warned"
[ -e "$tmp/elsewhere" ] && fail "daemon.data_dir was changed by SIGHUP"

# a broken schedule is refused and the old one stays: it fires
printf 'schedule:\n  refresh: "0 0 30 2 *"\n' >"$tmp/a.yaml"
mark=$(lines "$tmp/a.log")
kill -HUP "$a"
since "$tmp/a.log" "$mark" 'config reload failed.*never fires' || fail "a broken config was not refused"
since "$tmp/a.log" "$mark" 'msg="refresh due"' 70 || fail "the old schedule did not fire"

# SIGHUP removes webhooks: they stop (the thread is gone before "config reloaded")
good
sed -i '/^webhooks:/,$d' "$tmp/a.yaml"
mark=$(lines "$tmp/a.log")
kill -HUP "$a"
since "$tmp/a.log" "$mark" 'msg="config reloaded".*webhooks=false triage=true' ||
  fail "webhooks were not stopped by a reload"
e4=$(event removed)
[ "$(sql "select state from mnemo.outbox where event_id = $e4")" = pending ] ||
  fail "an event was sent after webhooks were removed"

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
[ $rc = 78 ] && grep -q '4 fields' "$tmp/bad.log" || fail "a bad schedule: rc $rc"
# no database, or one libpq cannot read: exit 1 at once, saying so (not retry forever)
rc=0
env -u MNEMO_CONFIG MNEMO_DB= timeout 20 "$mnemod" 2>"$tmp/nodb.log" || rc=$?
[ $rc = 78 ] && grep -q 'no database given' "$tmp/nodb.log" || fail "no database: rc $rc"
rc=0
timeout 20 "$mnemod" --db "host='unterminated" 2>"$tmp/nodb.log" || rc=$?
[ $rc = 78 ] && grep -q 'cannot parse the database connection string' "$tmp/nodb.log" ||
  fail "an unreadable conninfo: rc $rc"
rc=0
timeout 20 "$mnemod" --config "$tmp/no-such.yaml" 2>"$tmp/nofile.log" || rc=$?
[ $rc = 78 ] || fail "a missing config file: rc $rc (the unit would restart it every 5 s)"

# a database whose schema is not this mnemod's (here: a migration it does not know, as a
# newer mnemo leaves; or one pending after an upgrade): no leadership, so no job runs
# half-done against a schema that is not there; once it matches, it leads
sql "insert into mnemo.schema_migrations (version, name, sha256, duration_ms)
     values (9999, 'from_the_future', repeat('0', 64), 1)" >/dev/null
"$mnemod" 2>"$tmp/old.log" &
pids+=($!)
until_log "$tmp/old.log" "schema is not this mnemod's" || fail "mnemod led a database of another schema"
grep -q 'msg=leader ' "$tmp/old.log" && fail "mnemod led a database of another schema"
sql "delete from mnemo.schema_migrations where version = 9999" >/dev/null
kill -HUP "${pids[-1]}" # a reload wakes the wait: it checks again
until_log "$tmp/old.log" 'msg=leader ' 40 || fail "mnemod did not lead once migrated"
kill -TERM "${pids[-1]}"
wait "${pids[-1]}" || fail "mnemod after the schema check: exit $?"
echo "mnemod: 1 passed, 0 failed"
