#!/usr/bin/env bash
# test_faults.sh -- fault injection at every step of a refresh and of a promotion
# (DESIGN.md §9, issue 17) against a private PostgreSQL, three made-up languages and a tiny
# model.  The daemon's test-only hook (daemon/fault.c, MNEMO_FAULT_PAUSE) stops it at the
# chosen step, so each fault lands where it is meant to; every wait polls with a deadline.
#
#   cycle 1, the worker: kill -9 of the worker of each step that starts one
#   cycle 2, the daemon: kill -9 of mnemod before each daemon step and while each worker
#            step's worker runs (the worker dies with it); the next mnemod takes the job
#            back once its lease has run out
#   between: the LISTEN connection terminated (the daemon must be woken by NOTIFY again,
#            not by its 60 s poll), and SIGHUP with an invalid YAML, a schedule that does
#            not parse and a malformed webhook secret (the daemon keeps its old config)
#   cycle 3, PostgreSQL: an immediate stop and a start before each step
#   cycle 4, a full disk: a small tmpfs on daemon.data_dir filled before a step, emptied
#            once the attempt failed (where mount is refused: the daemon's next atomic
#            write fails instead; the output says which)
#
# After each fault, once the daemon is back at the next step, and after each cycle:
#   - exactly one production checkpoint
#   - the documents unchanged (count and the set of sha256, sha256 unique)
#   - every consumed_by a checkpoint on production's parent_id chain, within its watermark;
#     every train document up to production's watermark consumed; each promotion consumed
#     what it recorded, and was recorded once (no document consumed twice)
#   - no job running without a live lease of the daemon that is up; at the end of a
#     cycle every job succeeded (each fault cost exactly one attempt)
#   - no half-written file installed: every checkpoint's files complete (safetensors
#     lengths, `mnemo replay verify`, card.json parses), no temporary file in
#     checkpoints/
# Webhooks are at-least-once with an idempotency key: every event of the outbox reaches
# the receiver with a 2xx; a crash between the send and its record (kill -9 of mnemod,
# PostgreSQL gone) may send it again, with the same webhook-id and the same body, so at
# most one redelivery per such crash; the signature always verifies with the secret the
# daemon started with.
set -euo pipefail
ctl=$1
mnemod=$2
mnemo=$3
here=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/daemon/cluster.sh
. "$here/tests/daemon/cluster.sh"
t0=$SECONDS
daemon=""
note() { echo "[$((SECONDS - t0)) s] $*"; }
fail() {
  echo "FAIL: $*" >&2
  for f in "$tmp"/*.log "$tmp"/data/jobs/*/worker.log; do
    [ -f "$f" ] && { echo "== $f" >&2; tail -n 25 "$f" >&2; }
  done
  psql "$admin" -c "select id, kind, state, attempt, step, left(error, 150) error from mnemo.jobs
                    order by id" >&2 || true
  exit 1
}
start_cluster mnemo-ft
fault_cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if mountpoint -q "$tmp/data" 2>/dev/null; then umount -l "$tmp/data" || true; fi
  cleanup
}
trap fault_cleanup EXIT

# three made-up languages; a base set and one fresh batch per cycle, every language in each
python3 - "$tmp" <<'PY'
import json, random, sys
d = sys.argv[1]
rng = random.Random(17)
syll = {"lat": "ka to ri sa mu ne lo pa vi de".split(),
        "ell": "κα το ρι σα μυ νε λο πα βι δε".split(),
        "rus": "ка то ри са му не ло па ви де".split()}
def doc(lang):
    return " ".join("".join(rng.choice(syll[lang]) for _ in range(rng.randint(1, 3)))
                    for _ in range(rng.randint(12, 20)))
def write(name, n):
    with open("%s/%s.jsonl" % (d, name), "w") as f:
        for lang in syll:
            for _ in range(n):
                f.write(json.dumps({"lang": lang, "text": doc(lang), "source": "synthetic"},
                                   ensure_ascii=False) + "\n")
write("base", 40)
for i in range(1, 5):
    write("fresh%d" % i, 16)
write("listen", 2)
PY

# the data directory: a small tmpfs, so that the disk can be filled (root only)
mkdir -p "$tmp/data"
disk=injected
if [ -z "${MNEMO_FAULTS_NO_MOUNT:-}" ] && mount -t tmpfs -o size=24m,mode=0755 mnemo-faults "$tmp/data" 2>/dev/null; then
  disk=tmpfs
fi
note "a full disk will be: $([ $disk = tmpfs ] && echo "a 24 MB tmpfs on daemon.data_dir, filled" || echo "injected write failures (mount refused)")"

made_up_languages
model="model: {n_layer: 1, n_head: 2, n_embd: 32, max_seq_len: 32, vocab: 512}"
printf '%s\ntrain: {batch_size: 2, seq_len: 32, steps: 40, lr: 0.003, warmup_steps: 2, checkpoint_every: 0, threads: 1}\n' \
  "$model" >"$tmp/base.yaml"
psql "$admin" -XAtq -F $'\t' -c "select code, tag_id from mnemo.languages order by code" >"$tmp/tags.tsv"
psql "$admin" -XAtqc "select json_build_object('lang', lang, 'text', text) from mnemo.documents
                      where split = 'train' order by id" >"$tmp/train.jsonl"
"$mnemo" shard --tags "$tmp/tags.tsv" --out "$tmp/train.shard" "$tmp/train.jsonl" >/dev/null
"$mnemo" --config "$tmp/base.yaml" pretrain --out "$tmp/base" "$tmp/train.shard" >/dev/null ||
  fail "the base model"

secret=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
WEBHOOK_BODIES=$tmp/bodies.jsonl python3 "$here/tests/daemon/webhook_receiver.py" "$tmp/port" \
  "$tmp/hooks.jsonl" "$secret" 0 &
pids+=($!)
until_true 10 test -f "$tmp/port" || fail "the webhook receiver did not start"
port=$(cat "$tmp/port")
# write_config LEASE_S: the daemon's config; a tiny fine-tune that saves every 4 steps, no
# backoff and enough attempts for one fault at every step of a job
write_config() {
  cat >"$tmp/mnemo.yaml" <<EOF
$model
ingest: {heldout_fraction: 0.5}
train: {batch_size: 2, seq_len: 32, steps: 12, lr: 0.002, warmup_steps: 2, checkpoint_every: 4, threads: 1}
finetune: {ewc_lambda: 10, replay_ratio: 0.25, stages: "all"}
guards: {tolerance: 10, min_items: 5, resamples: 1000}
daemon: {data_dir: "$tmp/data", lease_s: $1, retry_backoff_s: 0, max_attempts: 40,
         fisher_windows: 2, replay_capacity: 16, eval_items: 10}
webhooks: {url: "http://127.0.0.1:$port/hook", secret: "$secret", timeout_s: 5}
EOF
}
write_config 30
MNEMO_DB=$operator "$ctl" --config "$tmp/mnemo.yaml" bootstrap "$tmp/base/model.safetensors" \
  --trained-on-stored --note "the first model" >/dev/null || fail "bootstrap"

# ---------------------------------------------------------------- invariants

docs_q="select count(*) || ' ' || md5(string_agg(encode(sha256, 'hex'), ',' order by sha256))
        || ' ' || (count(*) = count(distinct sha256)) from mnemo.documents"
ingested=0
# ingest FILE: documents in; what must stay from now on
ingest() {
  "$ctl" --config "$tmp/ingest.yaml" ingest --format jsonl "$1" >/dev/null || fail "ingest $1"
  ingested=$((ingested + $(wc -l <"$1")))
  docs=$(sql "$docs_q")
  [ "${docs%% *}" = $((ingested + $(wc -l <"$tmp/base.jsonl"))) ] || fail "ingest $1: $docs"
}
ingested=0
docs=$(sql "$docs_q")
chain="with recursive chain(id, parent_id) as (
         select id, parent_id from mnemo.checkpoints where state = 'production'
         union all select c.id, c.parent_id from mnemo.checkpoints c join chain on c.id = chain.parent_id)"
# files_ok: every file installed in a checkpoint's folder is whole; nothing temporary there
files_ok() {
  local stray
  stray=$(find "$tmp/data/checkpoints" -name '*.tmp*' | head -n 3)
  [ -z "$stray" ] || { echo "temporary files left in checkpoints/: $stray"; return 1; }
  for s in "$tmp"/data/checkpoints/*/replay.store; do
    [ -e "$s" ] || continue
    "$mnemo" replay verify "$s" >/dev/null 2>&1 || { echo "$s does not verify"; return 1; }
  done
  python3 - "$tmp/data/checkpoints" <<'PY'
import glob, json, os, struct, sys
for p in glob.glob(sys.argv[1] + "/*/*.safetensors"):
    with open(p, "rb") as f:
        raw = f.read(8)
        n = struct.unpack("<Q", raw)[0] if len(raw) == 8 else -1
        head = json.loads(f.read(n)) if 0 < n < 1 << 24 else None
    assert isinstance(head, dict), "%s: no header" % p
    end = max((v["data_offsets"][1] for k, v in head.items() if k != "__metadata__"), default=0)
    assert os.path.getsize(p) == 8 + n + end, "%s: %d bytes, its header says %d" % (
        p, os.path.getsize(p), 8 + n + end)
for p in glob.glob(sys.argv[1] + "/*/card.json"):
    json.load(open(p))
PY
}
# invariants WHERE: what must hold whenever the daemon is up (see the head of this file)
invariants() {
  local at=$1 v
  is "select count(*) from mnemo.checkpoints where state = 'production'" 1 ||
    fail "$at: $(sql "select count(*) from mnemo.checkpoints where state = 'production'") production checkpoints"
  v=$(sql "$docs_q")
  [ "$v" = "$docs" ] || fail "$at: the documents changed: $v, not $docs"
  is "$chain select count(*) from mnemo.documents
      where consumed_by is not null and consumed_by not in (select id from chain)" 0 ||
    fail "$at: documents consumed by a checkpoint off production's chain"
  is "select count(*) from mnemo.documents d join mnemo.checkpoints c on c.id = d.consumed_by
      where d.id > c.watermark or d.split <> 'train'" 0 ||
    fail "$at: documents consumed beyond their checkpoint's watermark, or held out"
  is "select count(*) from mnemo.documents where split = 'train' and consumed_by is null
      and id <= (select watermark from mnemo.checkpoints where state = 'production')" 0 ||
    fail "$at: train documents up to production's watermark left unconsumed"
  is "select count(*) from (select ckpt_id from mnemo.promotions where kind = 'promote'
      group by ckpt_id having count(*) > 1) x" 0 || fail "$at: a checkpoint promoted twice"
  is "select count(*) from mnemo.promotions p where kind = 'promote' and documents <>
      (select count(*) from mnemo.documents d where d.consumed_by = p.ckpt_id)" 0 ||
    fail "$at: a promotion consumed other documents than it recorded"
  if [ -n "$daemon" ] && ! stopped "$daemon" && kill -0 "$daemon" 2>/dev/null; then
    is "select count(*) from mnemo.jobs where state = 'running'
        and (lease_owner not like '%:$daemon:%' or lease_until < now())" 0 ||
      fail "$at: a job running without a live lease of mnemod $daemon"
  elif [ -n "$daemon" ]; then # stopped at a fault point: the job is its, whatever the clock
    is "select count(*) from mnemo.jobs where state = 'running' and lease_owner not like '%:$daemon:%'" 0 ||
      fail "$at: a job running under another lease than mnemod $daemon's"
  fi
  v=$(files_ok) || fail "$at: $v"
}
invariants "after bootstrap"

# ---------------------------------------------------------------- helpers

ndaemons=0
# start_daemon [POINTS]: a new mnemod as the daemon's role, stopping at MNEMO_FAULT_PAUSE.
# In a session of its own: a stopped process in the test's process group would get SIGHUP
# and SIGCONT from the kernel the moment that group became orphaned (POSIX job control)
start_daemon() {
  ndaemons=$((ndaemons + 1))
  log=$tmp/d$ndaemons.log
  MNEMO_FAULT_PAUSE=${1:-} MNEMO_DB=$daemon_db setsid "$mnemod" --config "$tmp/mnemo.yaml" 2>>"$log" &
  daemon=$!
  pids+=("$daemon")
  until_true 10 logged "msg=\"mnemod started\" pid=$daemon " 1 || fail "mnemod $daemon did not start (setsid forked?)"
}
stop_daemon() {
  kill -TERM "$daemon"
  wait "$daemon" || fail "mnemod did not exit 0 on SIGTERM"
  daemon=""
}
count() { grep -c -- "$1" "$2" 2>/dev/null || true; }
# logged PATTERN N: the daemon's log has at least N lines matching PATTERN (until_true's
# arguments are expanded once: what it polls must compute inside)
logged() { [ "$(count "$1" "$log")" -ge "$2" ]; }
# at_point POINT [N]: wait until the daemon stopped at POINT (KIND:STEP[@child]) for the Nth
# time; $child is the worker it just started
at_point() {
  local kind=${1%%:*} step=${1#*:} at=before pat
  [[ $step == *@child ]] && at=child && step=${step%@child}
  pat="msg=\"fault point\" kind=$kind step=$step at=$at "
  until_true 180 logged "$pat" "${2:-1}" || fail "mnemod never reached $1"
  until_true 20 stopped "$daemon" || fail "mnemod did not stop at $1"
  child=$(grep -- "$pat" "$log" | tail -n 1 | sed -n 's/.* child=\([0-9]*\).*/\1/p')
}
worker_gone() { ! [ -e "/proc/$1" ] || [[ $(ps -o stat= -p "$1" 2>/dev/null) == Z* ]]; }
job_is() { is "select state from mnemo.jobs where id = $1" "$2"; }
# approve: once the cycle's candidate awaits approval, an operator approves it
approve() {
  until_true 180 is "select state from mnemo.checkpoints where job_id = $job" awaiting_approval ||
    fail "refresh $job: candidate $(sql "select state || ' ' || reasons from mnemo.checkpoints where job_id = $job")"
  cand=$(sql "select id from mnemo.checkpoints where job_id = $job")
  MNEMO_DB=$operator "$ctl" approve "$cand" --note "faults: $cycle" >/dev/null || fail "approve $cand"
}
# begin_cycle NAME BATCH: fresh documents; production without a replay store and Fisher (as
# bootstrap leaves it), so the refresh builds them (shard_past, replay_base, fisher_base)
begin_cycle() {
  cycle=$1
  ct0=$SECONDS
  ingest "$tmp/fresh$2.jsonl"
  local prod
  prod=$(sql "select id from mnemo.checkpoints where state = 'production'")
  rm -f "$tmp/data/checkpoints/$prod/replay.store" "$tmp/data/checkpoints/$prod/fisher.safetensors"
  MNEMO_DB=$operator "$ctl" refresh --note "faults: $cycle" >/dev/null || fail "mnemoctl refresh"
  job=$(sql "select id from mnemo.jobs where kind = 'refresh' and state in ('queued', 'running')")
  [ -n "$job" ] || fail "no refresh queued"
}
# end_cycle REFRESH_ATTEMPTS PROMOTE_ATTEMPTS: both jobs succeeded, each fault cost one
# attempt, the candidate is production and its documents consumed
end_cycle() {
  local pjob
  until_true 180 is "select count(*) from mnemo.jobs where state not in ('succeeded', 'failed', 'cancelled')" 0 ||
    fail "$cycle: a job did not end"
  pjob=$(sql "select id from mnemo.jobs where kind = 'promote' and ckpt_id = $cand")
  is "select count(*) from mnemo.jobs where state <> 'succeeded'" 0 || fail "$cycle: a job did not succeed"
  is "select attempt from mnemo.jobs where id = $job" "$1" ||
    fail "$cycle: the refresh took $(sql "select attempt from mnemo.jobs where id = $job") attempts, not $1"
  is "select attempt from mnemo.jobs where id = $pjob" "$2" ||
    fail "$cycle: the promotion took $(sql "select attempt from mnemo.jobs where id = $pjob") attempts, not $2"
  is "select state from mnemo.checkpoints where id = $cand" production || fail "$cycle: $cand is not production"
  is "select count(*) > 0 from mnemo.documents where consumed_by = $cand" t || fail "$cycle: nothing consumed"
  for f in model.safetensors replay.store fisher.safetensors card.md card.json; do
    [ -s "$tmp/data/checkpoints/$cand/$f" ] || fail "$cycle: checkpoint $cand has no $f"
  done
  [ -d "$tmp/data/jobs/$job" ] && fail "$cycle: the succeeded refresh's folder was kept"
  invariants "end of the $cycle cycle"
  note "$cycle cycle: done in $((SECONDS - ct0)) s (refresh $1 attempts, promotion $2)"
}

refresh_steps="prepare shard shard_past replay_base fisher_base finetune install evalset guard verdict"
promote_steps="promote shard replay_copy replay_absorb replay_install fisher card"
# the steps that start a worker (spaces around each, so that *" KIND:STEP "* finds one)
worker_steps=" refresh:shard refresh:shard_past refresh:replay_base refresh:fisher_base "
worker_steps+="refresh:finetune refresh:evalset refresh:guard promote:shard promote:replay_absorb "
worker_steps+="promote:fisher "
# all_points: every step of both kinds, @child for those that start a worker
all_points() {
  local s
  for s in $refresh_steps; do
    [[ $worker_steps == *" refresh:$s "* ]] && echo "refresh:$s@child" || echo "refresh:$s"
  done
  for s in $promote_steps; do
    [[ $worker_steps == *" promote:$s "* ]] && echo "promote:$s@child" || echo "promote:$s"
  done
}
join() { local IFS=,; echo "$*"; }

# ---------------------------------------------------------------- 1: kill -9 of the worker

begin_cycle worker 1
mapfile -t points < <(for p in $worker_steps; do echo "$p@child"; done)
start_daemon "$(join "${points[@]}")"
approved=""
exits=0
for p in "${points[@]}"; do
  [[ $p == promote:* && -z $approved ]] && { approve; approved=1; }
  at_point "$p"
  invariants "worker: at $p"
  [[ ${child:-0} -gt 0 ]] || fail "worker: no worker at $p"
  kill -9 "$child"
  kill -CONT "$daemon"
  exits=$((exits + 1))
  until_true 30 logged 'mnemo exited with 137' $exits ||
    fail "worker: the worker's death at $p was not recorded"
done
end_cycle 8 4

# ---------------------------------------------------------------- 2: kill -9 of mnemod

stop_daemon
write_config 3 # the next daemon takes a job back 3 s after its daemon died
begin_cycle daemon 2
mapfile -t points < <(all_points)
approved=""
for p in "${points[@]}"; do
  start_daemon "$p"
  [[ $p == promote:* && -z $approved ]] && { approve; approved=1; }
  at_point "$p" # the daemon came back and carried the job to here
  invariants "daemon: at $p"
  kill -9 "$daemon"
  wait "$daemon" 2>/dev/null || true
  if [[ $p == *@child ]]; then
    until_true 10 worker_gone "$child" || fail "daemon: the worker of $p outlived its daemon"
  fi
  daemon=""
  invariants "daemon: killed at $p"
done
start_daemon
end_cycle 11 8
grep -q 'job taken back' "$log" "$tmp"/d*.log || fail "daemon: no job taken back"

# ---------------------------------------------------------------- the LISTEN connection lost

stop_daemon
write_config 30
mapfile -t points < <(for s in $refresh_steps; do echo "refresh:$s"; done; for s in $promote_steps; do echo "promote:$s"; done)
start_daemon "$(join "${points[@]}")"
until_true 20 grep -q 'msg=leader' "$log" || fail "mnemod did not lead"
listen_pid() {
  sql "select pid from pg_stat_activity where application_name like 'mnemod pid %'
       and pid not in (select pid from pg_locks where locktype = 'advisory' and granted)"
}
wpid=""
new_listen_pid() { # one work connection, not $wpid
  local p
  p=$(listen_pid)
  [ -n "$p" ] && [ "$(wc -l <<<"$p")" = 1 ] && [ "$p" != "$wpid" ]
}
until_true 10 new_listen_pid || fail "no work connection: $(listen_pid)"
wpid=$(listen_pid)
sql "select pg_terminate_backend($wpid)" >/dev/null
until_true 20 logged 'msg=leader' 2 || fail "mnemod did not take the lead again"
until_true 20 new_listen_pid || fail "the work connection was not replaced: $(listen_pid)"
wakes=$(count 'msg=wake channel=mnemo_documents' "$log")
ingest "$tmp/listen.jsonl"
# woken by the notification (the safety poll is 60 s away)
until_true 10 logged 'msg=wake channel=mnemo_documents' $((wakes + 1)) ||
  fail "the new work connection was not woken by NOTIFY"
invariants "after the LISTEN connection was lost"
note "LISTEN connection terminated: mnemod led again and was woken by NOTIFY"

# ---------------------------------------------------------------- SIGHUP with bad configs

cp "$tmp/mnemo.yaml" "$tmp/good.yaml"
bad_reload() { # bad_reload WHAT: the new config is refused, the daemon goes on with the old
  local refused
  refused=$(count 'msg="config reload failed' "$log")
  kill -HUP "$daemon"
  until_true 10 logged 'msg="config reload failed' $((refused + 1)) ||
    fail "SIGHUP: $1 was not refused: $(tail -n 3 "$log")"
  kill -0 "$daemon" || fail "SIGHUP: mnemod died of $1"
  grep -q 'webhooks are off' "$log" && fail "SIGHUP: $1 turned webhooks off"
  is "select count(*) from pg_locks where locktype = 'advisory' and granted" 1 ||
    fail "SIGHUP: mnemod stopped leading after $1"
  cp "$tmp/good.yaml" "$tmp/mnemo.yaml"
}
printf 'daemon: {data_dir: [unclosed\n' >>"$tmp/mnemo.yaml"
bad_reload "an invalid YAML"
printf 'schedule: {refresh: "61 * * * *"}\n' >>"$tmp/mnemo.yaml"
bad_reload "a bad schedule"
sed -i 's/secret: "whsec_[^"]*"/secret: "whsec_tooshort"/' "$tmp/mnemo.yaml"
bad_reload "a bad webhook secret"
note "SIGHUP: invalid YAML, bad schedule and bad webhook secret refused, the old config kept"

# ---------------------------------------------------------------- 3: PostgreSQL stopped hard

begin_cycle postgres 3
approved=""
restarts=0
for p in "${points[@]}"; do
  [[ $p == promote:* && -z $approved ]] && { approve; approved=1; }
  at_point "$p"
  invariants "postgres: at $p"
  pg_crash
  "$here/scripts/pg" start "$pg" >/dev/null
  restarts=$((restarts + 1))
  kill -CONT "$daemon"
done
# replay_copy and replay_install move files only: the daemon goes on to the next step
# without a statement, so the restarts before them and before the next step cost one attempt
end_cycle 11 6
test "$(count 'database unreachable\|work connection dropped\|lock connection dropped\|job runner lost the database' "$log")" -ge $((restarts - 2)) ||
  fail "postgres: the restarts went unnoticed"
# the daemon kept the config it had before the bad reloads: its webhooks still verify
grep -q 'msg="config reloaded"' "$log" && fail "a bad config was taken"

# ---------------------------------------------------------------- 4: a full disk

stop_daemon
begin_cycle disk 4
if [ $disk = tmpfs ]; then
  # each point twice: filled at the first, emptied at the second (the retry at that step)
  disk_points="refresh:prepare refresh:finetune refresh:evalset refresh:guard promote:promote
    promote:replay_copy promote:fisher promote:card"
  mapfile -t points < <(for p in $disk_points; do echo "$p"; echo "$p"; done)
  start_daemon "$(join "${points[@]}")"
  approved=""
  for p in $disk_points; do
    [[ $p == promote:* && -z $approved ]] && { approve; approved=1; }
    at_point "$p" 1
    failed=$(count 'msg="job attempt failed"' "$log")
    dd if=/dev/zero of="$tmp/data/filler" bs=4k 2>/dev/null || true
    kill -CONT "$daemon"
    at_point "$p" 2
    [ "$(count 'msg="job attempt failed"' "$log")" -gt "$failed" ] || fail "disk: $p did not fail on a full disk"
    why=$(grep 'msg="job attempt failed"' "$log" | tail -n 1 | sed 's/.* error=//')
    echo "  full disk at $p: $why"
    [[ $why == *"step ${p#*:}:"* ]] || fail "disk: the error does not name step ${p#*:}: $why"
    invariants "disk: full at $p"
    rm -f "$tmp/data/filler"
    kill -CONT "$daemon"
  done
  end_cycle 5 5
else
  # the daemon's next atomic write fails at these steps; the triage thread may take one
  # of them instead (the switch is the process's), so the attempts are counted, not fixed
  start_daemon "refresh:prepare=write,promote:promote=write,promote:replay_copy=write,promote:card=write"
  approve
  until_true 180 is "select count(*) from mnemo.jobs where state not in ('succeeded', 'failed', 'cancelled')" 0 ||
    fail "disk: a job did not end"
  pj=$(sql "select id from mnemo.jobs where kind = 'promote' and ckpt_id = $cand")
  fr=$(count "msg=\"job attempt failed\" job=$job " "$log")
  fp=$(count "msg=\"job attempt failed\" job=$pj " "$log")
  [ $((fr + fp)) -ge 1 ] || fail "disk: no injected write failure reached a job"
  grep 'msg="job attempt failed"' "$log" | grep -v 'Input/output error' && fail "disk: another failure"
  grep 'msg="job attempt failed"' "$log" | sed 's/.* step=/  injected write failure at /'
  end_cycle $((fr + 1)) $((fp + 1))
fi

# ---------------------------------------------------------------- webhooks

stop_daemon
start_daemon
until_true 60 is "select count(*) from mnemo.outbox where state <> 'delivered'" 0 ||
  fail "webhooks not delivered: $(sql "select type, state, last_error from mnemo.outbox where state <> 'delivered'")"
sql "select 'evt_' || event_id || ' ' || type from mnemo.outbox order by id" >"$tmp/outbox.txt"
# crashes that may come between a send and its record: kill -9 of mnemod, PostgreSQL stopped
python3 - "$tmp/hooks.jsonl" "$tmp/bodies.jsonl" "$tmp/outbox.txt" $((17 + 17)) <<'PY' || fail "webhooks"
import collections, json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
bodies = [json.loads(l) for l in open(sys.argv[2])]
events = dict(l.split() for l in open(sys.argv[3]))
crashes = int(sys.argv[4])
assert all(r["valid"] for r in rows), "a signature did not verify: %s" % [r for r in rows if not r["valid"]]
ok = collections.Counter(r["id"] for r in rows if r["status"] == 200)
assert set(ok) == set(events), "delivered %s, the outbox holds %s" % (sorted(ok), sorted(events))
shas = collections.defaultdict(set)
for b in bodies:
    shas[b["id"]].add(b["sha256"])
assert all(len(s) == 1 for s in shas.values()), "a redelivery with another body: %s" % shas
again = sum(n - 1 for n in ok.values())
assert again <= crashes, "%d redeliveries for %d crashes" % (again, crashes)
kinds = collections.Counter(events.values())
assert kinds["candidate_ready"] == 4 and kinds["promoted"] == 4 and not kinds["job_failed"], kinds
print("  webhooks: %d events, each delivered (2xx) and verified; %d redelivered with the same "
      "webhook-id and body" % (len(events), again))
PY
stop_daemon
invariants "at the end"
is "select count(*) from mnemo.jobs where state <> 'succeeded'" 0 || fail "a job did not succeed"
echo "ok: faults at every step: worker kill -9 (10), mnemod kill -9 (17), PostgreSQL immediate stop (17), full disk ($disk), LISTEN lost, bad SIGHUP x3; invariants held; $((SECONDS - t0)) s"
