# cluster.sh -- what the whole-cycle tests share (sourced by test_refresh.sh and
# test_triage.sh after they set ctl, mnemo and here): a private PostgreSQL in a fresh
# folder, migrated, with logins for the daemon, an operator and a reporter; polling helpers;
# three made-up languages in three scripts, and a small base model trained on what is
# stored.  The caller defines fail() and writes $tmp/base.jsonl before made_up_languages.
# shellcheck shell=bash

# start_cluster PREFIX: $tmp, $pg, $admin, $pids, cleanup on exit; MNEMO_DB the admin
start_cluster() {
  tmp=$(mktemp -d "/tmp/$1-XXXXXX")
  chmod 0755 "$tmp" # the server runs as postgres and must reach $tmp/pg
  pg=$tmp/pg
  pids=()
  trap cleanup EXIT
  admin="$("$here/scripts/pg" start "$pg") dbname=postgres"
  unset MNEMO_CONFIG
  export MNEMO_DB=$admin
  "$ctl" migrate >/dev/null 2>&1
  sql "create role op_login login in role mnemo_operator;
       create role dm_login login in role mnemo_daemon;
       create role rp_login login in role mnemo_reporter"
  operator="$admin user=op_login"
  daemon_db="$admin user=dm_login"
  reporter="$admin user=rp_login"
}
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  "$here/scripts/pg" stop "$pg" >/dev/null 2>&1 || true
  [ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
# until_true SECONDS COMMAND...: poll COMMAND until it succeeds
until_true() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.1
  done
}
# gone PATTERN: no process's command line matches PATTERN (pgrep -f run from this shell,
# not from a bash -c whose own command line would match)
gone() { ! pgrep -f "$1" >/dev/null; }
sql() { psql "$admin" -XAtqc "$1"; }
is() { [ "$(sql "$1")" = "$2" ]; }

# made_up_docs SEED BASE_N [NAME:LANG:N]...: $tmp/base.jsonl, BASE_N documents in each of three
# made-up languages in three scripts (lat, ell, rus), and $tmp/NAME.jsonl, N documents of LANG
made_up_docs() {
  python3 - "$tmp" "$@" <<'PY'
import json, random, sys
d, seed, base_n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
syll = {"lat": "ka to ri sa mu ne lo pa vi de".split(),
        "ell": "κα το ρι σα μυ νε λο πα βι δε".split(),
        "rus": "ка то ри са му не ло па ви де".split()}
def doc(lang):
    return " ".join("".join(rng.choice(syll[lang]) for _ in range(rng.randint(1, 3)))
                    for _ in range(rng.randint(25, 40)))
def write(name, langs, n):
    with open("%s/%s.jsonl" % (d, name), "w") as f:
        for lang in langs:
            for _ in range(n):
                f.write(json.dumps({"lang": lang, "text": doc(lang), "source": "synthetic"},
                                   ensure_ascii=False) + "\n")
write("base", syll, base_n)
for spec in sys.argv[4:]:
    name, lang, n = spec.split(":")
    write(name, [lang], int(n))
PY
}

# made_up_languages: lat (Latn), ell (Grek), rus (Cyrl), half of the documents held out;
# $tmp/base.jsonl ingested
made_up_languages() {
  printf 'ingest: {heldout_fraction: 0.5}\n' >"$tmp/ingest.yaml"
  for l in lat:Latn ell:Grek rus:Cyrl; do "$ctl" lang add "${l%:*}" --script "${l#*:}" >/dev/null; done
  "$ctl" --config "$tmp/ingest.yaml" ingest --format jsonl "$tmp/base.jsonl" >/dev/null
}

# base_model: $model (the shape) and $tmp/base/model.safetensors, trained 300 steps on the
# stored training documents
base_model() {
  model="model: {n_layer: 2, n_head: 2, n_embd: 64, max_seq_len: 64, vocab: 512}"
  printf '%s\ntrain: {batch_size: 4, seq_len: 64, steps: 300, lr: 0.003, warmup_steps: 5, checkpoint_every: 0}\n' \
    "$model" >"$tmp/base.yaml"
  psql "$admin" -XAtq -F $'\t' -c "select code, tag_id from mnemo.languages order by code" >"$tmp/tags.tsv"
  psql "$admin" -XAtqc "select json_build_object('lang', lang, 'text', text) from mnemo.documents
                        where split = 'train' order by id" >"$tmp/train.jsonl"
  "$mnemo" shard --tags "$tmp/tags.tsv" --out "$tmp/train.shard" "$tmp/train.jsonl" >/dev/null
  "$mnemo" --config "$tmp/base.yaml" pretrain --out "$tmp/base" "$tmp/train.shard" >/dev/null
}

# pg_crash: stop the private cluster the hard way (pg_ctl -m immediate: no shutdown
# checkpoint, crash recovery at the next `scripts/pg start`), as kill -9 would leave it
pg_crash() {
  local bindir=${PG_BINDIR:-}
  # shellcheck disable=SC2012 # scripts/pg finds the binaries the same way
  [ -n "$bindir" ] || bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "${MNEMO_PG_USER:-postgres}" -- "$bindir/pg_ctl" -D "$pg/data" -m immediate -w stop >/dev/null
  else
    "$bindir/pg_ctl" -D "$pg/data" -m immediate -w stop >/dev/null
  fi
}
# stopped PID: the process is stopped (SIGSTOP), state T
stopped() { [[ $(ps -o stat= -p "$1" 2>/dev/null) == T* ]]; }
