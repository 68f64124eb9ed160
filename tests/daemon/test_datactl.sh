#!/usr/bin/env bash
# test_datactl.sh -- mnemoctl's data-plane commands as operators and scripts use them:
# lang, source(s), ingest (exit codes, file:line errors, --skip-bad and its reject
# file, --json), report and reports.
set -euo pipefail
ctl=$1
here=$(cd "$(dirname "$0")/../.." && pwd)
data=$here/tests/data/ingest
admin=$(cat "$MNEMO_TEST_PG_FILE")
db=t_datactl_$$
tmp=$(mktemp -d /tmp/mnemo-test-datactl-XXXXXX)
cleanup() {
  psql "$admin" -qc "drop database if exists $db with (force)" >/dev/null 2>&1 || true
  for r in ingest reporter operator; do psql "$admin" -qc "drop role if exists t_${r}_$$" >/dev/null 2>&1 || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_rc() { # expect_rc WANT CMD...
  local want=$1; shift
  local rc=0
  "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  [ $rc -eq "$want" ] || { cat "$tmp/out" "$tmp/err" >&2; fail "\"$*\" exited $rc, want $want"; }
}
count() { psql "$MNEMO_DB" -qAtc "$1"; }
unset MNEMO_CONFIG
psql "$admin" -qc "create database $db"
export MNEMO_DB="$admin dbname=$db"
"$ctl" migrate >/dev/null 2>&1

# languages
expect_rc 0 "$ctl" lang add spa --script Latn
grep -q "language spa (Spanish, Latn): tag id" "$tmp/out" || fail "lang add: $(cat "$tmp/out")"
expect_rc 0 "$ctl" lang add swh --script Latn --name Kiswahili
expect_rc 0 "$ctl" lang add tha --script Thai
expect_rc 0 "$ctl" lang add spa --script Latn # again: same tag
[ "$(count "select count(distinct tag_id) from mnemo.languages")" = 3 ] || fail "tag ids"
expect_rc 1 "$ctl" lang add xyz --script Latn
grep -q 'unknown ISO 639-3 language code "xyz"' "$tmp/err" || fail "unknown code: $(cat "$tmp/err")"
expect_rc 1 "$ctl" lang add rus --script cyrillic
grep -q 'unknown ISO 15924 script code "cyrillic"' "$tmp/err" || fail "bad script"
expect_rc 2 "$ctl" lang add rus
expect_rc 0 "$ctl" --json lang list
python3 -c "import json,sys; l=json.load(open(sys.argv[1])); assert [x['code'] for x in l]==['spa','swh','tha'], l; assert l[1]['name']=='Kiswahili'" "$tmp/out" ||
  fail "lang list --json"

# ingest: usage errors are 2, before anything is read
expect_rc 2 "$ctl" ingest
expect_rc 2 "$ctl" ingest --lang swh "$data/swahili.txt"
expect_rc 2 "$ctl" ingest --format xml "$data/sample.jsonl"
expect_rc 2 "$ctl" ingest --format jsonl --unit line "$data/sample.jsonl"
expect_rc 2 "$ctl" ingest --lang swh --source s --unit sentence "$data/swahili.txt"
expect_rc 2 "$ctl" ingest --lang swh --source s --reject x "$data/swahili.txt"

# a good file; options may follow the file
expect_rc 0 "$ctl" ingest "$data/swahili.txt" --lang swh --source kiswahili --unit paragraph
grep -q "3 unit(s) read" "$tmp/out" || fail "ingest: $(cat "$tmp/out")"
[ ! -s "$tmp/err" ] || fail "no progress line expected when stderr is not a terminal: $(cat "$tmp/err")"
[ "$(count "select count(*) from mnemo.documents where lang = 'swh'")" = 3 ] || fail "swh count"

# a bad file: file:line: reason, exit 1, nothing stored
cp "$data/bad_utf8.txt" "$tmp/"
expect_rc 1 "$ctl" ingest --lang swh --source kiswahili "$tmp/bad_utf8.txt"
grep -q "bad_utf8.txt:2: invalid UTF-8 continuation byte at byte 21" "$tmp/err" || fail "bad: $(cat "$tmp/err")"
grep -q "nothing was stored" "$tmp/err" || fail "bad: $(cat "$tmp/err")"
[ "$(count "select count(*) from mnemo.documents")" = 3 ] || fail "a bad file stored something"

# --skip-bad: the good lines stored, the bad one in FILE.rejects, verbatim
expect_rc 0 "$ctl" ingest --lang swh --source kiswahili --skip-bad "$tmp/bad_utf8.txt"
grep -q "1 bad unit(s) written to $tmp/bad_utf8.txt.rejects" "$tmp/out" || fail "skip: $(cat "$tmp/out")"
cmp -s "$tmp/bad_utf8.txt.rejects" <(sed -n 2p "$data/bad_utf8.txt") || fail "reject file content"
[ "$(count "select count(*) from mnemo.documents")" = 5 ] || fail "skip-bad stored the wrong count"

# a disabled language is refused; --json for scripts
expect_rc 0 "$ctl" lang disable tha
printf '{"lang": "tha", "text": "ภาษาไทย", "source": "t"}\n{"lang": "spa", "text": "hola", "source": "t"}\n' >"$tmp/two.jsonl"
expect_rc 1 "$ctl" --json ingest --format jsonl "$tmp/two.jsonl"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert not r['committed'] and r['bad']==1 and 'disabled' in r['problems'][0]['reason'] and r['problems'][0]['where'].endswith('two.jsonl:1'), r" "$tmp/out" ||
  fail "ingest --json: $(cat "$tmp/out")"
expect_rc 0 "$ctl" lang enable tha
expect_rc 0 "$ctl" ingest --format jsonl --json - <"$tmp/two.jsonl"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['committed'] and r['inserted']==2 and {l['lang'] for l in r['languages']}=={'tha','spa'}, r" "$tmp/out" ||
  fail "ingest from stdin --json: $(cat "$tmp/out")"
expect_rc 0 "$ctl" sources
grep -q "kiswahili" "$tmp/out" || fail "sources"

# reports
expect_rc 0 "$ctl" report --lang tha --text "ข้อความ mixed with English" --expected "ข้อความภาษาไทย" --context '{"app": "chat"}'
grep -q "report 1 recorded" "$tmp/out" || fail "report: $(cat "$tmp/out")"
expect_rc 1 "$ctl" report --lang tha --text "x" --context '[1, 2]'
grep -q "context must be a JSON object" "$tmp/err" || fail "context"
expect_rc 1 "$ctl" report --lang xyz --text "x"
grep -q 'language "xyz" is not known' "$tmp/err" || fail "report lang"
expect_rc 2 "$ctl" report --lang tha
expect_rc 2 "$ctl" reports --status open
expect_rc 0 "$ctl" --json reports --lang tha
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert len(r)==1 and r[0]['status']=='new' and r[0]['expected_text']=='ข้อความภาษาไทย' and r[0]['context']=={'app':'chat'}, r" "$tmp/out" ||
  fail "reports --json: $(cat "$tmp/out")"
expect_rc 0 "$ctl" reports
grep -q "1 report(s)" "$tmp/out" || fail "reports table"
# each role as a login user, through mnemoctl: it can do its job and is refused the rest
for r in ingest reporter operator; do psql "$admin" -qc "create role t_${r}_$$ login in role mnemo_$r"; done
as_role() { local r=$1; shift; env MNEMO_DB="$admin dbname=$db user=t_${r}_$$" "$@"; }
printf 'Mvua kubwa ilinyesha jana usiku.\n' >"$tmp/role.txt"
expect_rc 0 as_role ingest "$ctl" ingest --lang swh --source by-ingest-role "$tmp/role.txt"
grep -q "1 new" "$tmp/out" || fail "ingest role: $(cat "$tmp/out")"
expect_rc 1 as_role ingest "$ctl" lang add rus --script Cyrl
grep -q "permission denied" "$tmp/err" || fail "ingest role lang add: $(cat "$tmp/err")"
expect_rc 1 as_role ingest "$ctl" reports
expect_rc 0 as_role reporter "$ctl" report --lang swh --text "Jibu lilichanganya Kiingereza"
expect_rc 1 as_role reporter "$ctl" reports
grep -q "permission denied" "$tmp/err" || fail "reporter reads reports: $(cat "$tmp/err")"
expect_rc 1 as_role reporter "$ctl" ingest --lang swh --source x "$tmp/role.txt"
expect_rc 0 as_role operator "$ctl" lang add rus --script Cyrl
expect_rc 0 as_role operator "$ctl" source add by-ingest-role --licence CC-BY-4.0
expect_rc 0 as_role operator "$ctl" reports
grep -q "2 report(s)" "$tmp/out" || fail "operator reports: $(cat "$tmp/out")"
[ "$(count "select reporter from mnemo.reports order by id desc limit 1")" = "t_reporter_$$" ] ||
  fail "the reporter is not recorded"
echo "datactl: 1 passed, 0 failed"
