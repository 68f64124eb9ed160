#!/usr/bin/env bash
# test_console.sh MNEMOCTL MNEMOD ARTEFACTS -- the console and /metrics of a real mnemod on a
# real PostgreSQL, reached over TCP where logins need their password (scripts/pg --tcp).
#
#  - /healthz, /readyz (standby while another session holds the leader's lock, leader once
#    it is gone, 503 once the database is gone), /metrics checked by promtool and parsed by
#    Python's prometheus_client, the per-language cap;
#  - in Debian's chromium (npm playwright-core, console_browser.js): the operator's pages,
#    the daemon's and a reporter's approvals refused by the database, a POST without its
#    CSRF token refused, a report's HTML shown as text, the operator's approval -- and here
#    the audit rows say it was op_login, and no one else decided anything;
#  - cookies HttpOnly and SameSite=Strict, Secure under TLS (console.tls_cert); failed
#    logins limited per address; a bad console.listen refused at start;
#  - the logins made by mnemoctl user add (a password only as SCRAM), list and remove.
# Screenshots of every page go to ARTEFACTS.  playwright-core is installed into
# var/console-ref by scripts/console-ref; not being able to install it fails the test.
set -euo pipefail
ctl=$1
mnemod=$2
art=$3
here=$(cd "$(dirname "$0")/../.." && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }
# shellcheck source=tests/daemon/cluster.sh
. "$here/tests/daemon/cluster.sh"

mods=$("$here/scripts/console-ref") || fail "could not install npm playwright-core (scripts/console-ref)"
mkdir -p "$art"
command -v promtool >/dev/null || fail "promtool is missing (Debian's prometheus): run scripts/setup"
py=
for p in python3 /usr/bin/python3; do # Debian's python3-prometheus-client is in the system python
  if command -v "$p" >/dev/null && "$p" -c "import prometheus_client" 2>/dev/null; then py=$p && break; fi
done
[ -n "$py" ] || fail "no python3 with prometheus_client (scripts/setup installs python3-prometheus-client)"

# a cluster on a TCP port (a random one may be taken: a few tries)
tmp=$(mktemp -d /tmp/mnemo-console-XXXXXX)
chmod 0755 "$tmp"
pg=$tmp/pg
pids=()
trap cleanup EXIT
for try in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 20000))
  admin=$("$here/scripts/pg" start "$pg" --tcp "$port" 2>/dev/null) && break
  [ "$try" -lt 5 ] || fail "could not start PostgreSQL on a TCP port"
done
export MNEMO_DB=$admin
unset MNEMO_CONFIG
"$ctl" migrate >/dev/null
# the logins, made as an administrator would (mnemoctl user), each with its password
for u in op_login:operator:op-passwd dm_login:daemon:dm-passwd rp_login:reporter:rp-passwd; do
  IFS=: read -r name role pw <<<"$u"
  "$ctl" user add "$name" --role "$role" --password-stdin <<<"$pw" >/dev/null
done
"$ctl" user add short --role operator --password-stdin <<<"short" 2>/dev/null && fail "a 5-character password was taken"
"$ctl" user add x1 --role admin 2>/dev/null && fail "--role admin was taken"
"$ctl" user add tmp_login --role ingest >/dev/null
# a failed CREATE ROLE names what failed, never the statement (it holds the verifier)
"$ctl" user add op_login --role operator --password-stdin <<<"another-password" 2>"$tmp/dup" &&
  fail "a login added twice"
grep -q "already exists" "$tmp/dup" && ! grep -qi "scram\|password " "$tmp/dup" ||
  fail "a failed user add: $(cat "$tmp/dup")"
is "select rolpassword like 'SCRAM-SHA-256\$%' from pg_authid where rolname = 'op_login'" t ||
  fail "op_login's password is not a SCRAM verifier"
"$ctl" user add "$(printf 'x%.0s' $(seq 70))" --role operator 2>/dev/null && fail "a 70-byte login name was taken"
sql "grant mnemo_operator to postgres"
"$ctl" user remove postgres 2>"$tmp/rm" && fail "user remove dropped a superuser"
grep -q "administrator" "$tmp/rm" || fail "user remove of a superuser: $(cat "$tmp/rm")"
sql "revoke mnemo_operator from postgres"
[ "$("$ctl" --json user list | python3 -c 'import json,sys; print(" ".join(u["user"] + ":" + u["roles"] for u in json.load(sys.stdin)))')" = \
  "dm_login:daemon op_login:operator rp_login:reporter tmp_login:ingest" ] || fail "user list: $("$ctl" user list)"
"$ctl" user remove tmp_login >/dev/null || fail "user remove"
! "$ctl" user remove postgres 2>/dev/null || fail "user remove dropped a login outside mnemo's roles"
is "select count(*) from pg_roles where rolname in ('tmp_login', 'short', 'x1')" 0 || fail "a login that should not exist"
python3 "$here/tests/daemon/console_history.py" 5 6 | psql "$admin" -XAtq -v ON_ERROR_STOP=1 >/dev/null
cand=$(sql "select id from mnemo.checkpoints where state = 'awaiting_approval'")
[ -n "$cand" ] || fail "the fixture made no candidate"

# another session holds the leader's lock: the daemon waits (standby), and serves all the same
mkfifo "$tmp/hold"
psql "$admin" -XAtq <"$tmp/hold" >/dev/null 2>&1 &
pids+=($!)
exec 7>"$tmp/hold"
echo "select pg_advisory_lock(120320915500900);" >&7
until_true 10 is "select count(*) from pg_locks where locktype = 'advisory' and granted" 1 ||
  fail "the lock holder did not take the lock"

# start_mnemod NAME YAML: a daemon with that config; $base its console's address
start_mnemod() {
  "$mnemod" --config "$2" --db "$admin user=dm_login" >"$tmp/$1.log" 2>&1 7>&- &
  pids+=($!)
  until_true 10 grep -q 'console: serving' "$tmp/$1.log" || { cat "$tmp/$1.log" >&2; fail "$1 serves nothing"; }
  local p
  p=$(grep -o 'console: serving.*port=[0-9]*' "$tmp/$1.log" | grep -o '[0-9]*$')
  base=http://127.0.0.1:$p
}
cat >"$tmp/c.yaml" <<EOF
daemon: {data_dir: $tmp/data}
console:
  listen: "127.0.0.1:0"
  conninfo: "host=127.0.0.1 port=$port dbname=postgres"
  login_failures: 3
EOF
start_mnemod main "$tmp/c.yaml"
main=$base

# ---- health, readiness, metrics
[ "$(curl -s "$main/healthz")" = ok ] || fail "/healthz"
until_true 10 sh -c "curl -s '$main/readyz' | grep -q 'ready: standby'" ||
  fail "/readyz while another holds the lock: $(curl -s "$main/readyz")"
curl -s "$main/metrics" >"$tmp/metrics.txt"
promtool check metrics <"$tmp/metrics.txt" || fail "promtool rejects /metrics"
"$py" - "$tmp/metrics.txt" <<'PY' || fail "/metrics does not say what it should"
import sys
from prometheus_client.parser import text_string_to_metric_families
fam = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
samples = [s for f in fam.values() for s in f.samples]
def one(name, **labels):
    got = [s.value for s in samples
           if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(got) == 1, (name, labels, got)
    return got[0]
assert fam["mnemo_leader"].type == "gauge" and one("mnemo_leader") == 0
assert one("mnemo_database_up") == 1
assert fam["mnemo_job_duration_seconds"].type == "histogram"
assert one("mnemo_job_duration_seconds_count", kind="refresh") == 0
assert one("mnemo_jobs", kind="refresh", state="queued") == 0
assert one("mnemo_reports", status="triaged") == 1 and one("mnemo_reports", status="new") == 1
assert fam["mnemo_webhook_deliveries"].type == "counter"  # the parser drops _total
assert one("mnemo_last_promotion_timestamp_seconds") > 1.7e9
langs = fam["mnemo_language_heldout_bpb"].samples
assert len(langs) == 5 and all(1 < s.value < 4 for s in langs), langs
assert one("mnemo_languages") == 5
PY
# the cap on per-language series: a second daemon that allows 3 languages shows none
sed 's/login_failures: 3/metrics_languages: 3/' "$tmp/c.yaml" >"$tmp/cap.yaml"
start_mnemod cap "$tmp/cap.yaml"
curl -s "$base/metrics" >"$tmp/cap.txt"
! grep -q '^mnemo_language_' "$tmp/cap.txt" || fail "per-language series above the cap"
grep -q '^mnemo_languages 5$' "$tmp/cap.txt" || fail "the cap hid the count of languages"
kill "${pids[-1]}"

# ---- cookies and the session rule
code=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$main/jobs")
[ "$code" = "303 $main/login?next=/jobs" ] || fail "/jobs without a session: $code"
code=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$main/login?next=//evil.example/x")
[ "$(curl -s "$main/login?next=//evil.example/x" | grep -o 'name="next" value="[^"]*"')" = 'name="next" value="/"' ] ||
  fail "the login page took an outside next="
for u in /metrics /healthz /static/console.js; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -d x=y "$main$u")
  [ "$code" = 405 ] || fail "POST $u answered $code"
done
code=$(curl -s -o /dev/null -w '%{http_code}' -d "decision=approve&note=x&confirm=yes" "$main/candidate/$cand")
[ "$code" = 403 ] || fail "a POST without a session answered $code"
curl -s -D "$tmp/h" -o /dev/null "$main/login"
grep -qi '^set-cookie: mnemo_login=[0-9a-f]\{64\}; Path=/login; HttpOnly; SameSite=Strict' "$tmp/h" ||
  fail "the login cookie: $(grep -i set-cookie "$tmp/h")"

# ---- the browser
NODE_PATH=$mods node "$here/tests/daemon/console_browser.js" "$main" "$art" "$cand" ||
  fail "the console in a browser"
for p in login languages language candidates candidate reports jobs candidate-approved refused-daemon; do
  [ -s "$art/$p.png" ] || fail "no screenshot of $p"
done
# the database recorded one decision, the operator's, and the audit log says who
is "select decision || ' ' || by_user from mnemo.approvals" "approve op_login" ||
  fail "approvals: $(sql "select decision, by_user from mnemo.approvals")"
is "select actor from mnemo.events where kind = 'approved' and ckpt_id = $cand" op_login ||
  fail "the audit log of the approval"
is "select state from mnemo.checkpoints where id = $cand" approved || fail "the candidate's state"
is "select state || ': ' || error from mnemo.jobs where kind = 'promote'" "cancelled: cancelled by op_login" ||
  fail "the promotion job: $(sql "select state, error from mnemo.jobs")"
is "select string_agg(status || ' ' || decided_by, ',') from mnemo.reports where status = 'rejected'" \
  "rejected op_login" || fail "the rejected report: $(sql "select id, status, decided_by from mnemo.reports")"

# an operator reads what a refusal means, not its SQLSTATE; a script gets it as JSON
rc=0; "$ctl" --db "$admin user=dm_login" reject "$cand" --note "x" 2>"$tmp/refused" || rc=$?
[ $rc = 1 ] && grep -q "why: your login's roles do not allow this" "$tmp/refused" &&
  ! grep -q SQLSTATE "$tmp/refused" || fail "a refusal for an operator: $(cat "$tmp/refused")"
rc=0; "$ctl" --db "$admin user=dm_login" --json reject "$cand" --note "x" 2>"$tmp/refused" || rc=$?
python3 -c 'import json,sys; e=json.load(open(sys.argv[1])); assert e["sqlstate"] == "42501" and e["error"] == "db", e' \
  "$tmp/refused" || fail "a refusal under --json: $(cat "$tmp/refused")"

# ---- failed logins are limited per address (login_failures: 3); then even the right
# password waits
nonce=$(curl -s -c "$tmp/jar" "$main/login" | grep -o 'name="csrf" value="[0-9a-f]*' | grep -o '[0-9a-f]*$')
code=
for i in 1 2 3 4; do # the browser failed once from this address: two more, the third refused
  code=$(curl -s -o /dev/null -w '%{http_code}' -b "$tmp/jar" -d "login=op_login&password=no$i&csrf=$nonce" "$main/login")
  [ "$code" = 429 ] && break
  [ "$code" = 401 ] || fail "failed login $i answered $code"
done
[ "$code" = 429 ] && [ "$i" = 3 ] || fail "failed login $i answered $code, want 429 at the third"
code=$(curl -s -o "$tmp/limited.html" -w '%{http_code}' -b "$tmp/jar" -d "login=op_login&password=op-passwd&csrf=$nonce" "$main/login")
[ "$code" = 429 ] && grep -q 'Too many failed logins' "$tmp/limited.html" ||
  fail "the right password after too many failures answered $code"

# ---- TLS: the session cookie is Secure; a login cannot be checked on a trusting socket
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" -days 1 \
  -subj /CN=127.0.0.1 >/dev/null 2>&1
cat >"$tmp/tls.yaml" <<EOF
daemon: {data_dir: $tmp/data}
console:
  listen: "127.0.0.1:0"
  conninfo: "$admin"
  tls_cert: $tmp/cert.pem
  tls_key: $tmp/key.pem
EOF
start_mnemod tls "$tmp/tls.yaml"
tls=${base/http:/https:}
curl -sk -D "$tmp/h" -o /dev/null -c "$tmp/tjar" "$tls/login"
grep -qi '^set-cookie: mnemo_login=.*; HttpOnly; SameSite=Strict; Secure' "$tmp/h" ||
  fail "under TLS the cookie is not Secure: $(grep -i set-cookie "$tmp/h")"
nonce=$(grep mnemo_login "$tmp/tjar" | awk '{print $NF}')
code=$(curl -sk -o "$tmp/nopw.html" -w '%{http_code}' -b "$tmp/tjar" -d "login=op_login&password=anything&csrf=$nonce" "$tls/login")
[ "$code" = 503 ] && grep -q 'cannot check passwords' "$tmp/nopw.html" ||
  fail "a login over a trusting socket answered $code"
! curl -s -o /dev/null "$base/healthz" 2>/dev/null || fail "the TLS console answered plain HTTP"
kill "${pids[-1]}"

# ---- a console.listen that cannot be served stops mnemod at start
printf 'console: {listen: "127.0.0.1:%s"}\n' "${main##*:}" >"$tmp/taken.yaml"
rc=0; "$mnemod" --config "$tmp/taken.yaml" --db "$admin" >/dev/null 2>"$tmp/taken.err" || rc=$?
[ $rc -eq 1 ] && grep -q 'console.listen' "$tmp/taken.err" || fail "a taken port: exit $rc"
printf 'console: {listen: "localhost:80"}\n' >"$tmp/bad.yaml"
rc=0; "$mnemod" --config "$tmp/bad.yaml" --db "$admin" >/dev/null 2>"$tmp/bad.err" || rc=$?
[ $rc -eq 78 ] && grep -q 'ADDRESS:PORT' "$tmp/bad.err" || fail "console.listen localhost:80: exit $rc"

# ---- the lock's holder leaves: the daemon leads; the database leaves: not ready
exec 7>&-
until_true 20 sh -c "curl -s '$main/readyz' | grep -q 'ready: leader'" ||
  fail "/readyz after taking the lead: $(curl -s "$main/readyz")"
curl -s "$main/metrics" >"$tmp/m2.txt"
grep -q '^mnemo_leader 1$' "$tmp/m2.txt" || fail "mnemo_leader after taking the lead"
"$here/scripts/pg" stop "$pg" >/dev/null
code=$(curl -s -o "$tmp/ready.txt" -w '%{http_code}' "$main/readyz")
[ "$code" = 503 ] || fail "/readyz without a database answered $code"
curl -s "$main/metrics" >"$tmp/m3.txt"
grep -q '^mnemo_database_up 0$' "$tmp/m3.txt" || fail "mnemo_database_up without a database"
# logins while the database is gone are not failures: 503 each time, never the limit's 429
# (from another loopback address: 127.0.0.1 is blocked by now)
nonce=$(curl -s --interface 127.0.0.2 -c "$tmp/jar2" "$main/login" | grep -o 'name="csrf" value="[0-9a-f]*' | grep -o '[0-9a-f]*$')
for i in 1 2 3 4 5; do
  code=$(curl -s --interface 127.0.0.2 -o /dev/null -w '%{http_code}' -b "$tmp/jar2" \
    -d "login=dm_login&password=dm-passwd&csrf=$nonce" "$main/login")
  [ "$code" = 503 ] || fail "login $i without a database answered $code"
done
echo "console: every check held (screenshots in $art)"
