#!/usr/bin/env bash
# test_json.sh MNEMOCTL -- every mnemoctl command's --json output (and its errors) checked
# against the shape docs/json.md gives it (tests/daemon/json_shape.py): each key present,
# each value of its type, times in ISO 8601 UTC; every command the help lists has a shape
# there.  Run on a database with a made-up past (console_history.py).
set -euo pipefail
ctl=$1
here=$(cd "$(dirname "$0")/../.." && pwd)
admin=$(cat "$MNEMO_TEST_PG_FILE")
db=t_json_$$
tmp=$(mktemp -d /tmp/mnemo-test-json-XXXXXX)
cleanup() {
  psql "$admin" -qc "drop database if exists $db with (force)" >/dev/null 2>&1 || true
  psql "$admin" -qc "drop role if exists json_login" >/dev/null 2>&1 || true
  [ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
psql "$admin" -qc "create database $db" >/dev/null
export MNEMO_DB=${admin/dbname=postgres/dbname=$db}
sql() { psql "$MNEMO_DB" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
out=$tmp/out
mkdir -p "$out"
# j NAME ARGS...: mnemoctl ARGS --json into $out/NAME.json (it must succeed)
j() {
  local name=$1
  shift
  "$ctl" "$@" --json >"$out/$name.json" 2>"$tmp/err" || fail "mnemoctl $* --json: $(cat "$tmp/err")"
}

j migrate migrate
python3 "$here/tests/daemon/console_history.py" 3 2 | psql "$MNEMO_DB" -XAtq -v ON_ERROR_STOP=1 >/dev/null
printf 'log:\n  level: warn\n' >"$tmp/ok.yaml"
j version version
j config_check config check "$tmp/ok.yaml"
j config_dump config dump
j config_keys config keys
j migrate_status migrate status
j lang_add lang add spa --script Latn
j lang_disable lang disable spa
j lang_enable lang enable spa
j lang_list lang list
j source_add source add wiki --origin "a package" --licence CC0-1.0
j sources sources
printf 'hola mundo\nbuenos días\n' >"$tmp/spa.txt"
j ingest ingest "$tmp/spa.txt" --lang spa --source wiki --quiet
j report report --lang spa --text "no entiende" --context '{"where": "chat"}'
# what other systems may write straight into the table still comes out in its shape: a
# number JSON has no word for (NaN) is null, an integer beyond 64 bits keeps its object
sql "insert into mnemo.reports (claimed_lang, text, severity, context)
     values ('spa', 'raro', 'NaN', '{\"n\": 123456789012345678901234567890}')" >/dev/null
j reports reports
python3 -c 'import json, sys; r = json.load(open(sys.argv[1]))[0]
assert r["severity"] is None and isinstance(r["context"], dict), r' "$out/reports.json" ||
  fail "NaN or a huge integer broke reports --json: $(head -c 600 "$out/reports.json")"
j export export --split train --out "$tmp/export"
j refresh refresh --note "the json test"
job=$(sql "select max(id) from mnemo.jobs")
sql "insert into mnemo.jobs (kind, state, attempt, max_attempts, error, finished_at)
     values ('refresh', 'failed', 1, 3, 'no language has a whole window', now())" >/dev/null
j jobs jobs
j jobs_show jobs show "$job"
j cancel cancel "$job"
sql "update mnemo.checkpoints set job_id = $job where state = 'awaiting_approval'" >/dev/null
j candidates candidates
j status status
cand=$(sql "select id from mnemo.checkpoints where state = 'awaiting_approval'")
prod=$(sql "select id from mnemo.checkpoints where state = 'production'")
j show show "$cand"
j lineage lineage "$prod"
j approve approve "$cand" --note "looks right"
sql "insert into mnemo.checkpoints (state, parent_id, watermark, sha256)
     values ('awaiting_approval', $prod, 0, repeat('c', 64))" >/dev/null
j reject reject "$(sql "select max(id) from mnemo.checkpoints")" --note "not this one"
j rollback rollback --note "back"
j triage triage
rep=$(sql "select min(id) from mnemo.reports where status = 'triaged'")
j triage_show triage show "$rep"
j triage_accept triage accept "$rep" --note "a real problem"
j triage_reject triage reject "$(sql "select min(id) from mnemo.reports where status = 'new'")" --note "noise"
j user_add user add json_login --role reporter
j user_list user list
j user_remove user remove json_login
# errors: one object on standard error, the usage error too
"$ctl" show 999999 --json 2>"$out/error.json" >/dev/null && fail "show of a missing checkpoint"
"$ctl" approve 1 --json 2>"$out/usage_error.json" >/dev/null && fail "approve without --note"
# a failure prints nothing on standard output, one object on standard error
printf 'log:\n  levle: warn\n' >"$tmp/bad.yaml"
"$ctl" config check "$tmp/bad.yaml" --json >"$tmp/bad.out" 2>"$out/error_config.json" &&
  fail "config check took a bad file"
[ ! -s "$tmp/bad.out" ] || fail "config check --json printed on standard output: $(cat "$tmp/bad.out")"
python3 "$here/tests/daemon/json_shape.py" "$here/docs/json.md" error "$out/error_config.json" ||
  fail "config check's error is not the error object"
rm "$out/error_config.json"
"$ctl" reject 1 --note a --note b --json 2>"$out/usage_error.json" >/dev/null && fail "--note twice"
grep -q 'given twice' "$out/usage_error.json" || fail "--note twice: $(cat "$out/usage_error.json")"

# every command the help lists has its shape (man and completion print no JSON); bootstrap
# and generate need a model: test_refresh checks theirs
"$ctl" --help | sed -n '/^commands:/,/^$/p' | grep '^  [a-z]' |
  awk '{n = $1; if ($2 ~ /^[a-z]+$/) n = n "_" $2; print n}' >"$tmp/commands"
python3 "$here/tests/daemon/json_shape.py" "$here/docs/json.md" --commands "$tmp/commands" \
  --skip man,completion,bootstrap,generate --dir "$out" || fail "--json output and docs/json.md disagree"
echo "json: every command's output has its documented shape"
