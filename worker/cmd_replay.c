/*
 * cmd_replay.c -- `mnemo replay absorb` and `mnemo replay verify`: the per-language replay
 * store (replay/) filled from shards' windows, and checked whole.
 */
#include "replay/replay.h"
#include "worker/worker_int.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

const worker_opt worker__replay_absorb_opts[] = {
    WORKER_TEXT("store", store, "FILE", "the replay store (created when absent)"),
    WORKER_COUNT("capacity", capacity, "N", "windows held per language at most"),
    WORKER_OPT_END,
};

/* bytes_sha256 -- the byte tokenizer's identity: what a version 1 store's windows are */
static mn_status bytes_sha256(char out[MN_SHA256_HEX_LEN + 1], mn_error *err)
{
  tokenizer *t = NULL;
  mn_status rc = tok_create_bytes(&t, err);
  if (rc == MN_OK) snprintf(out, MN_SHA256_HEX_LEN + 1, "%s", tok_sha256(t));
  tok_destroy(t);
  return rc;
}

/* replay_absorb -- every shard's sections cut into windows of train.seq_len + 1 tokens,
 * back to back, offered to the store at --store (created when absent); the shards must share
 * one tokenizer, the store's */
int worker__cmd_replay_absorb(worker_ctx *w, worker_args *o)
{
  if (!o->store || o->capacity < 1 || o->capacity > UINT32_MAX || o->npos < 1)
    return worker__usage(
        "replay absorb needs --store FILE, --capacity N (windows per language) and at "
        "least one shard");
  mn_error err = {0};
  uint32_t window = (uint32_t)w->cfg.train.seq_len + 1;
  int nshards = o->npos;
  shard *shards = calloc((size_t)nshards, sizeof *shards);
  replay_offer *offers = NULL;
  size_t noffers = 0, total = 0;
  char v1_tok[MN_SHA256_HEX_LEN + 1]; /* what a version 1 store holds: the byte tokenizer's */
  int code = MN_EXIT_FAIL;
  if (!shards) {
    mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
    goto out;
  }
  for (int i = 0; i < nshards; i++) {
    if (shard_read(o->pos[i], &shards[i], &err) != MN_OK) goto out;
    total += shards[i].nsections;
    if (strcmp(shards[i].tok_sha256, shards[0].tok_sha256) != 0) {
      mn_error_set(&err, MN_ERR_INPUT,
                   "the shards %s (tokenizer %.16s...) and %s (tokenizer %.16s...) were made by "
                   "different tokenizers: a replay store holds one tokenizer's windows",
                   o->pos[0], shards[0].tok_sha256, o->pos[i], shards[i].tok_sha256);
      mn_error_detail(&err, "%s: %s; %s: %s", o->pos[0], shards[0].tok_sha256, o->pos[i],
                      shards[i].tok_sha256);
      goto out;
    }
  }
  if (bytes_sha256(v1_tok, &err) != MN_OK) goto out;
  offers = calloc(total ? total : 1, sizeof *offers);
  if (!offers) {
    mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
    goto out;
  }
  for (int i = 0; i < nshards; i++)
    for (uint32_t k = 0; k < shards[i].nsections; k++) {
      const shard_section *sec = &shards[i].sections[k];
      if (sec->count / window == 0) continue; /* shorter than a window: nothing to offer */
      offers[noffers++] = (replay_offer){.code = sec->code,
                                         .windows = shards[i].tokens + sec->first,
                                         .n = (size_t)(sec->count / window)};
    }
  if (replay_store_absorb(o->store, shards[0].tok_sha256, v1_tok, window, (uint32_t)o->capacity,
                          offers, noffers, &err) != MN_OK)
    goto out;
  replay_store s;
  if (replay_store_load(o->store, &s, &err) != MN_OK) goto out;
  for (size_t i = 0; i < noffers; i++) {
    const replay_lang *l = replay_store_find(&s, offers[i].code);
    worker__emit(json_pack("{s:s, s:s, s:I, s:I, s:I}", "event", "replay_absorb", "lang",
                           offers[i].code, "offered", (json_int_t)offers[i].n, "held",
                           (json_int_t)(l ? l->count : 0), "seen", (json_int_t)(l ? l->seen : 0)));
  }
  replay_store_fini(&s);
  code = MN_EXIT_OK;
out:
  if (code != MN_EXIT_OK) code = worker__fail(&err);
  for (int i = 0; shards && i < nshards; i++)
    shard_fini(&shards[i]);
  free(shards);
  free(offers);
  return code;
}

/* replay_verify -- read a store whole (every field and the checksum) and say what it holds,
 * and whose ids: the tokenizer (a version 1 store's is the byte tokenizer) */
int worker__cmd_replay_verify(worker_ctx *w, worker_args *o)
{
  (void)w;
  if (o->npos != 1) return worker__usage("replay verify takes one argument: STORE");
  mn_error err = {0};
  replay_store s;
  if (replay_store_load(o->pos[0], &s, &err) != MN_OK) return worker__fail(&err);
  int version = s.tok_sha256[0] ? REPLAY_VERSION : 1;
  if (!s.tok_sha256[0] && bytes_sha256(s.tok_sha256, &err) != MN_OK) {
    replay_store_fini(&s);
    return worker__fail(&err);
  }
  uint64_t held = 0;
  for (uint32_t i = 0; i < s.nlangs; i++) {
    const replay_lang *l = &s.langs[i];
    held += l->count;
    worker__emit(json_pack("{s:s, s:s, s:I, s:I, s:I}", "event", "replay_lang", "lang", l->code,
                           "capacity", (json_int_t)l->capacity, "held", (json_int_t)l->count,
                           "seen", (json_int_t)l->seen));
  }
  worker__emit(json_pack("{s:s, s:s, s:b, s:i, s:s, s:i, s:i, s:I}", "event", "replay_verify",
                         "store", o->pos[0], "ok", 1, "version", version, "tokenizer", s.tok_sha256,
                         "window", (int)s.window, "languages", (int)s.nlangs, "windows",
                         (json_int_t)held));
  replay_store_fini(&s);
  return MN_EXIT_OK;
}
