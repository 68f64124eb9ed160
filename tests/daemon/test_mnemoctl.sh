#!/usr/bin/env bash
# test_mnemoctl.sh -- mnemoctl as operators use it: exit codes (0 ok, 1 failure,
# 2 usage), --version, --help on every command that --help lists (and help COMMAND),
# refresh twice and jobs show, config check/dump,
# migrate and migrate status on a fresh database, two migrators at once.
set -euo pipefail
ctl=$1
here=$(cd "$(dirname "$0")/../.." && pwd)
admin=$(cat "$MNEMO_TEST_PG_FILE")
db=t_mnemoctl_$$
tmp=$(mktemp -d /tmp/mnemo-test-ctl-XXXXXX)
cleanup() { psql "$admin" -qc "drop database if exists $db with (force)" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_rc() { # expect_rc WANT CMD...
  local want=$1; shift
  local rc=0
  "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  [ $rc -eq "$want" ] || { cat "$tmp/out" "$tmp/err" >&2; fail "\"$*\" exited $rc, want $want"; }
}
unset MNEMO_DB MNEMO_CONFIG

expect_rc 0 "$ctl" --help
grep -q "config check" "$tmp/out" || fail "--help does not list commands"
expect_rc 2 "$ctl"
expect_rc 2 "$ctl" frobnicate
expect_rc 2 "$ctl" --bogus version
expect_rc 2 "$ctl" config
expect_rc 2 "$ctl" config nonsense
expect_rc 2 "$ctl" config check
expect_rc 2 "$ctl" migrate status --bogus
expect_rc 0 "$ctl" --version
grep -q "^mnemoctl [0-9]" "$tmp/out" || fail "--version: $(cat "$tmp/out")"
# every command --help lists ("NAME [SUB] ARGS  Summary.", a SUB in lower case) has its own
"$ctl" --help | sed -n '/^commands:/,/^$/p' | sed '1d;$d' | grep '^  [a-z]' >"$tmp/commands"
[ "$(wc -l <"$tmp/commands")" -ge 30 ] || fail "--help lists too few commands: $(cat "$tmp/commands")"
while read -r name sub _; do
  [[ $sub =~ ^[a-z]+$ ]] || sub=""
  c="$name${sub:+ $sub}"
  # shellcheck disable=SC2086
  expect_rc 0 "$ctl" $c --help
  grep -q "^usage: mnemoctl $c" "$tmp/out" || fail "\"$c --help\" printed no usage: $(cat "$tmp/out")"
  grep -q -- "--help" "$tmp/out" || fail "\"$c --help\" lists no options"
  cat "$tmp/out" >>"$tmp/allhelp"
done <"$tmp/commands"
"$ctl" --help >>"$tmp/allhelp"
# help written one way: 79 columns, no tabs, an option's metavariable the same in every
# command, a default as "(default: X)", required options unbracketed in the synopsis and
# marked in the list, optional ones bracketed
python3 - "$tmp/allhelp" <<'PY' || fail "help text is not consistent"
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
bad, metas = [], {}
for line in text.splitlines():
    if len(line) > 79: bad.append("over 79 columns: " + line)
    if "\t" in line: bad.append("a tab: " + line)
for m in re.finditer(r"--([a-z][a-z-]*) ([A-Z][A-Z_]*)\b", text):
    metas.setdefault(m.group(1), set()).add(m.group(2))
for name, ms in metas.items():
    if len(ms) > 1: bad.append("--%s has metavariables %s" % (name, sorted(ms)))
for block in text.split("usage: mnemoctl ")[1:]:
    syn = block.split("\n\n")[0]
    opts = block.split("options:\n")[-1]
    for m in re.finditer(r"^  --([a-z-]+)(?: [A-Z_]+)?(?:\.\.\.)?\s+(.*(?:\n {16,}.*)*)", opts, re.M):
        name, desc = m.group(1), " ".join(m.group(2).split())
        if re.search(r"\bdefault\b", desc) and not re.search(r"\(default: [^)]*\)$", desc):
            bad.append("--%s: a default not written \"(default: X)\" at the end: %s" % (name, desc))
        if name in ("json", "db", "config", "help", "version") or syn.startswith("["): continue
        required = desc.endswith("(required)")
        bracketed = re.search(r"\[--%s\b" % name, syn) is not None
        if required == bracketed or "--" + name not in syn:
            bad.append("--%s in \"%s\": required %s, bracketed %s" % (name, syn.split("\n")[0], required, bracketed))
for b in bad: print(b)
sys.exit(1 if bad else 0)
PY
grep -q "^usage: mnemoctl bootstrap CHECKPOINT \[--replay FILE\] \[--fisher FILE\]" "$tmp/allhelp" ||
  fail "bootstrap's synopsis lacks its options"
expect_rc 2 "$ctl" approve 3
grep -q "approve needs --note NOTE" "$tmp/err" || fail "a required option was not asked for: $(cat "$tmp/err")"
# typos get the nearest command, subcommand, option or value, and the help of the command
expect_rc 2 "$ctl" staus
grep -q 'did you mean "status"' "$tmp/err" || fail "staus: $(cat "$tmp/err")"
expect_rc 2 "$ctl" lang ad spa
grep -q 'did you mean "lang add"' "$tmp/err" || fail "lang ad: $(cat "$tmp/err")"
expect_rc 2 "$ctl" triage acept 1
grep -q 'did you mean "triage accept"' "$tmp/err" || fail "triage acept: $(cat "$tmp/err")"
expect_rc 2 "$ctl" lang add spa --scrpit Latn
grep -q 'did you mean "--script"' "$tmp/err" && grep -q 'Try "mnemoctl help lang add"' "$tmp/err" ||
  fail "--scrpit: $(cat "$tmp/err")"
expect_rc 2 "$ctl" reports --status nwe
grep -q 'did you mean "new"' "$tmp/err" || fail "--status nwe: $(cat "$tmp/err")"
expect_rc 2 "$ctl" frobnicate
grep -q 'did you mean' "$tmp/err" && fail "a word near nothing got a suggestion: $(cat "$tmp/err")"
# "help" and "help COMMAND [SUB]" say what --help says
expect_rc 0 "$ctl" help
grep -q "config check" "$tmp/out" || fail "help does not list commands"
expect_rc 0 "$ctl" help triage accept
grep -q "^usage: mnemoctl triage accept" "$tmp/out" || fail "help triage accept: $(cat "$tmp/out")"
expect_rc 0 "$ctl" help jobs
grep -q "^usage: mnemoctl jobs " "$tmp/out" || fail "help jobs: $(cat "$tmp/out")"

# config check
MNEMO_DB_PASSWORD=x expect_rc 0 "$ctl" config check "$here/configs/mnemo.example.yaml"
grep -q "ok" "$tmp/out" || fail "config check printed no ok"
printf 'log:\n  levle: info\n' >"$tmp/bad.yaml"
expect_rc 1 "$ctl" config check "$tmp/bad.yaml"
grep -q "$tmp/bad.yaml:2:3: key \"log.levle\": unknown key; did you mean \"log.level\"?" "$tmp/err" ||
  fail "config check error: $(cat "$tmp/err")"
expect_rc 1 "$ctl" --json config check "$tmp/bad.yaml"
[ ! -s "$tmp/out" ] && grep -q '"error":"config".*did you mean' "$tmp/err" ||
  fail "--json config check: $(cat "$tmp/out" "$tmp/err")"

# config dump: effective values, where they came from, secrets redacted
printf 'database:\n  conninfo: "password=${T_PW}"\n' >"$tmp/sec.yaml"
T_PW=hunter2 expect_rc 0 "$ctl" --config "$tmp/sec.yaml" config dump
grep -q hunter2 "$tmp/out" && fail "config dump printed a secret"
grep -q 'conninfo: "<redacted>"' "$tmp/out" || fail "config dump: $(cat "$tmp/out")"
MNEMO_DB="dbname=x password=hunter3" expect_rc 0 "$ctl" config dump
grep -q hunter3 "$tmp/out" && fail "config dump printed MNEMO_DB's secret"
grep -q "# MNEMO_DB, secret" "$tmp/out" || fail "config dump does not say MNEMO_DB: $(cat "$tmp/out")"
expect_rc 0 "$ctl" config keys
grep -q '`database.conninfo`' "$tmp/out" || fail "config keys lacks database.conninfo"

# migrate needs a database
expect_rc 1 "$ctl" migrate
grep -q "no database given" "$tmp/err" || fail "migrate without db: $(cat "$tmp/err")"

psql "$admin" -qc "create database $db"
url="$admin dbname=$db"
# two migrators at once, one through MNEMO_DB: each file applied once
"$ctl" --db "$url" migrate >"$tmp/m1" 2>&1 &
p1=$!
MNEMO_DB="$url" "$ctl" migrate >"$tmp/m2" 2>&1 &
p2=$!
wait $p1 || fail "first migrator failed: $(cat "$tmp/m1")"
wait $p2 || fail "second migrator failed: $(cat "$tmp/m2")"
n=$(psql "$url" -qAtc "select count(*) from mnemo.schema_migrations")
known=$("$ctl" --json version | sed -n 's/.*"migrations": \([0-9]*\).*/\1/p')
[ "$n" = "$known" ] || fail "ledger has $n rows, binary knows $known"
applied=$(cat "$tmp/m1" "$tmp/m2" | grep -o 'applied [0-9]*' | awk '{s += $2} END {print s}')
[ "$applied" = "$known" ] || fail "migrators applied $applied in total, want $known"

expect_rc 0 "$ctl" --db "$url" migrate
grep -q "applied 0 migration" "$tmp/out" || fail "re-run applied something: $(cat "$tmp/out")"
expect_rc 0 "$ctl" --db "$url" migrate status
grep -q "0001     create_schema_roles" "$tmp/out" || fail "status: $(cat "$tmp/out")"
grep -q "0 pending" "$tmp/out" || fail "status: $(cat "$tmp/out")"
expect_rc 0 "$ctl" migrate status --db "$url" # the global options after the command too
grep -q "0 pending" "$tmp/out" || fail "status with --db after it: $(cat "$tmp/out")"
expect_rc 0 "$ctl" --db "$url" --json migrate status
grep -q '"state": "applied"' "$tmp/out" || fail "json status: $(cat "$tmp/out")"

# refresh twice: the first queues, the second says the one there is; jobs show has it whole
expect_rc 0 "$ctl" --db "$url" refresh --note "first"
grep -q "^refresh job [0-9]* queued$" "$tmp/out" || fail "first refresh: $(cat "$tmp/out")"
job=$(grep -o '[0-9]*' "$tmp/out" | head -1)
expect_rc 0 "$ctl" --db "$url" refresh --note "second"
grep -q "^refresh job $job is queued already" "$tmp/out" || fail "second refresh: $(cat "$tmp/out")"
expect_rc 0 "$ctl" --db "$url" --json refresh
grep -q '"queued": false' "$tmp/out" || fail "--json refresh: $(cat "$tmp/out")"
expect_rc 0 "$ctl" --db "$url" jobs show "$job"
grep -q "^reason  *first$" "$tmp/out" && grep -q "^state  *queued$" "$tmp/out" ||
  fail "jobs show: $(cat "$tmp/out")"
expect_rc 1 "$ctl" --db "$url" jobs show 999999
grep -q "no job 999999" "$tmp/err" || fail "jobs show of no job: $(cat "$tmp/err")"
expect_rc 0 "$ctl" --db "$url" cancel "$job"
expect_rc 0 "$ctl" --db "$url" jobs show "$job"
grep -q "cancelled by" "$tmp/out" || fail "jobs show after cancel: $(cat "$tmp/out")"

# bootstrap registers a checkpoint only: any other file is refused, and nothing is stored
printf 'daemon: {data_dir: "%s/data"}\n' "$tmp" >"$tmp/boot.yaml"
head -c 4096 /dev/urandom >"$tmp/noise.safetensors"
for f in /etc/passwd "$tmp/noise.safetensors"; do
  expect_rc 1 "$ctl" --db "$url" --config "$tmp/boot.yaml" bootstrap "$f" --note "not a model"
  grep -q "$f" "$tmp/err" || fail "bootstrap of $f: $(cat "$tmp/err")"
done
[ "$(psql "$url" -XAtqc "select count(*) from mnemo.checkpoints")" = 0 ] || fail "a bad bootstrap registered a row"
[ ! -e "$tmp/data/checkpoints" ] || fail "a bad bootstrap wrote files"

# a database newer than the binary: status exits 1, migrate refuses
psql "$url" -qc "insert into mnemo.schema_migrations values (9999, 'from_the_future', repeat('a', 64), now(), 1)"
expect_rc 1 "$ctl" --db "$url" migrate status
grep -q "unknown" "$tmp/out" || fail "status does not show the unknown version"
expect_rc 1 "$ctl" --db "$url" migrate
grep -q "newer than this mnemo" "$tmp/err" || fail "migrate: $(cat "$tmp/err")"

# the config is found without --config: ./mnemo.yaml, then $XDG_CONFIG_HOME/mnemo/mnemo.yaml
mkdir -p "$tmp/cwd" "$tmp/xdg/mnemo"
printf 'guards: {min_items: 41}\n' >"$tmp/xdg/mnemo/mnemo.yaml"
(cd "$tmp/cwd" && env -u MNEMO_CONFIG XDG_CONFIG_HOME="$tmp/xdg" "$ctl" config dump) >"$tmp/out"
grep -q "min_items: 41 *# $tmp/xdg/mnemo/mnemo.yaml" "$tmp/out" || fail "XDG config: $(grep min_items "$tmp/out")"
printf 'guards: {min_items: 42}\n' >"$tmp/cwd/mnemo.yaml"
(cd "$tmp/cwd" && env -u MNEMO_CONFIG XDG_CONFIG_HOME="$tmp/xdg" "$ctl" config dump) >"$tmp/out"
grep -q "min_items: 42" "$tmp/out" || fail "./mnemo.yaml: $(grep min_items "$tmp/out")"

# without any config file, the data folder is the user's own, not the shared /var/lib/mnemo
(cd "$tmp" && env -u MNEMO_CONFIG XDG_CONFIG_HOME="$tmp/none" XDG_STATE_HOME="$tmp/state" "$ctl" config dump) >"$tmp/out"
grep -q "data_dir: \"$tmp/state/mnemo\"" "$tmp/out" || fail "ad-hoc data_dir: $(grep data_dir "$tmp/out")"

# a bad connection string names the problem, not the password
expect_rc 1 "$ctl" --db "$admin dbname=nope_$$ password=hunter4" migrate status
grep -q hunter4 "$tmp/err" && fail "connection error printed the password"
grep -q "could not connect to database \"nope_$$\"" "$tmp/err" || fail "connect error: $(cat "$tmp/err")"
echo "mnemoctl: 1 passed, 0 failed"
