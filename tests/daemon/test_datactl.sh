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
# on a terminal (script(1) gives one): the progress line, with how far when the size is known
MNEMO_DB=$MNEMO_DB script -qec "$ctl ingest $data/swahili.txt --lang swh --source kiswahili --unit paragraph" \
  /dev/null >"$tmp/tty.out" 2>&1 || fail "ingest on a terminal: $(cat "$tmp/tty.out")"
grep -q "units, .* MB/s  *100%" "$tmp/tty.out" || fail "no progress with a percentage: $(cat "$tmp/tty.out")"
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
# --- hostile text (issue 17) ------------------------------------------------------------
# names given to mnemoctl are refused when they hold control characters; nothing changes
esc=$'\e'
expect_rc 2 "$ctl" lang add spa --script Latn --name "Spanish${esc}]0;pwned"$'\a'
grep -q -- '--name .*control character U+001B' "$tmp/err" || fail "lang add --name: $(cat "$tmp/err")"
[ "$(count "select name from mnemo.languages where code = 'spa'")" = Spanish ] || fail "lang add --name changed the name"
expect_rc 2 "$ctl" source add "evil"$'\r'"source"
grep -q 'control character U+000D' "$tmp/err" || fail "source add NAME: $(cat "$tmp/err")"
expect_rc 2 "$ctl" source add kiswahili --licence "CC-BY${esc}[2J"
grep -q -- '--licence' "$tmp/err" || fail "source add --licence: $(cat "$tmp/err")"
expect_rc 2 "$ctl" source add kiswahili --note $'bidi \u202e override'
grep -q 'bidirectional control U+202E' "$tmp/err" || fail "source add --note: $(cat "$tmp/err")"

# what others stored raw (writers that bypass mnemoctl) is shown escaped in every table
psql "$admin dbname=$db" -qv ON_ERROR_STOP=1 >/dev/null <<'SQL'
update mnemo.languages set name = E'Thai\x1b]0;owned\x07' where code = 'tha';
insert into mnemo.sources (name, origin, licence, notes)
  values (E'evil\rsource', E'http://x\x1b[2J', E'CC\u202eBY', 'n');
insert into mnemo.reports (claimed_lang, text, expected_text)
  values ('tha', E'ok\r999 accepted\x1b[2J\u202egnp.exe', E'line one\nexpected: forged\x1b[1m');
SQL
hostile() { # hostile FILE: does FILE hold a byte a terminal acts on (C0 but \n, DEL, C1, bidi)?
  python3 -c 'import sys,re; t=open(sys.argv[1],"rb").read().decode("utf-8","replace"); sys.exit(0 if re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", t) else 1)' "$1"
}
for cmd in "lang list" "sources" "reports"; do
  # shellcheck disable=SC2086
  expect_rc 0 "$ctl" $cmd
  hostile "$tmp/out" && fail "\"$cmd\" printed raw control characters: $(od -c "$tmp/out" | head -20)"
done
grep -q 'evil\\rsource' <("$ctl" sources) || fail "sources: the name is not shown escaped"
grep -q 'ok\\r999 accepted\\x1b\[2J\\u202egnp' <("$ctl" reports) || fail "reports: the excerpt is not escaped: $("$ctl" reports)"
rid=$(count "select id from mnemo.reports where text like 'ok%'")
expect_rc 0 "$ctl" triage show "$rid"
hostile "$tmp/out" && fail "triage show printed raw control characters: $(od -c "$tmp/out" | head)"
grep -q '^expected: forged' "$tmp/out" && fail "triage show: a text forged a line of its own"
grep -q '^  expected: forged\\x1b\[1m' "$tmp/out" || fail "triage show: $(cat "$tmp/out")"
psql "$admin dbname=$db" -qc "update mnemo.reports set status = 'triaged', severity = 2 where id = $rid" >/dev/null
expect_rc 0 "$ctl" triage
hostile "$tmp/out" && fail "the triage queue printed raw control characters: $(od -c "$tmp/out" | head)"
grep -q "^$rid " "$tmp/out" || fail "triage queue: $(cat "$tmp/out")"
# --json stays exact
expect_rc 0 "$ctl" --json reports --lang tha
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert any(x['text']=='ok\r999 accepted\x1b[2J\u202egnp.exe' for x in r), r" "$tmp/out" ||
  fail "reports --json is not exact"

# mnemoctl report checks its input before the database, naming the option
expect_rc 1 "$ctl" report --lang tha --text "clear${esc}[2J"
grep -q -- '--text cannot be a report.s text: control character U+001B at byte 5' "$tmp/err" || fail "report --text: $(cat "$tmp/err")"
python3 -c 'print("{\"a\": \"" + "x" * 70000 + "\"}")' >"$tmp/big.json"
expect_rc 1 "$ctl" report --lang tha --text "ข้อความ" --context "$(cat "$tmp/big.json")"
grep -q -- '--context has 70009 bytes, more than 65536' "$tmp/err" || fail "big context: $(head -c 300 "$tmp/err")"
grep -q 'Failing row' "$tmp/err" && fail "big context echoed the row"
expect_rc 1 "$ctl" report --lang tha --text "ข้อความ" --context '{"app": {"k": "a\u0000b"}}'
grep -q -- '--context holds a NUL character (\\u0000) at \$.app.k' "$tmp/err" || fail "NUL context: $(cat "$tmp/err")"
grep -q 'JSON_ALLOW_NUL' "$tmp/err" && fail "NUL context: jansson's flag in the message"

# ingest: a bad --lang is refused up front (2), even with --skip-bad: nothing read or stored
n0=$(count "select count(*) from mnemo.documents")
expect_rc 2 "$ctl" ingest --lang xyz --source s --skip-bad "$data/swahili.txt"
[ "$(wc -l <"$tmp/err")" -le 3 ] || fail "bad --lang: one error per line: $(cat "$tmp/err")"
grep -q -- '--lang "xyz": unknown language' "$tmp/err" || fail "bad --lang: $(cat "$tmp/err")"
[ ! -e "$data/swahili.txt.rejects" ] || fail "bad --lang wrote a reject file"
[ "$(count "select count(*) from mnemo.documents")" = "$n0" ] || fail "bad --lang stored something"
expect_rc 2 "$ctl" ingest --lang swh --source "s${esc}x" "$tmp/role.txt"
# a second --skip-bad run keeps the first run's reject file and says where its own went
echo "fixed by hand" >>"$tmp/bad_utf8.txt.rejects" # an operator's edit must not be lost
cp "$tmp/bad_utf8.txt.rejects" "$tmp/first.rejects"
expect_rc 0 "$ctl" ingest --lang swh --source kiswahili --skip-bad "$tmp/bad_utf8.txt"
grep -q "1 bad unit(s) written to $tmp/bad_utf8.txt.rejects.1" "$tmp/out" || fail "second rejects: $(cat "$tmp/out")"
grep -q "already existed and was left as it was" "$tmp/out" || fail "second rejects: not said"
cmp -s "$tmp/bad_utf8.txt.rejects" "$tmp/first.rejects" || fail "the first reject file was replaced"
cmp -s "$tmp/bad_utf8.txt.rejects.1" <(sed -n 2p "$data/bad_utf8.txt") || fail "second reject file content"
# a run with no bad unit leaves no empty reserved file behind
expect_rc 0 "$ctl" ingest --lang swh --source kiswahili --skip-bad "$tmp/role.txt"
[ ! -e "$tmp/role.txt.rejects" ] || fail "an empty reject file was left behind"
# a control character in an ingested line is a bad unit with its file:line
printf 'Mstari safi kabisa.\nmstari \033[2J mchafu\n' >"$tmp/ctl.txt"
expect_rc 1 "$ctl" ingest --lang swh --source kiswahili "$tmp/ctl.txt"
grep -q "ctl.txt:2: control character U+001B at byte 7 of the text" "$tmp/err" || fail "control in ingest: $(cat "$tmp/err")"
# tables align by display width: a name with a letter of two bytes and wide characters
expect_rc 0 "$ctl" lang add nob --script Latn --name "Norsk bokmål 書面語"
expect_rc 0 "$ctl" lang add jpn --script Jpan --name "日本語の名前がとても長い言語の名前です"
expect_rc 0 "$ctl" lang list
python3 - "$tmp/out" <<'PY' || fail "lang list is not aligned: $(cat "$tmp/out")"
import sys, unicodedata
def width(s):
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
# the script column starts at the same display column on every line
cols = {width(l[:l.index(w)]) for l in lines[1:] for w in (" Latn ", " Thai ", " Jpan ") if w in l}
assert len(cols) == 1, (cols, lines)
assert any("…" in l for l in lines), "the long name was not cut"
PY
echo "datactl: 1 passed, 0 failed"
