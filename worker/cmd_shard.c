/*
 * cmd_shard.c -- `mnemo shard`: JSONL documents into a token shard (trainer/shard.c), all
 * of them or one split (each record's stored "split", else the hash rule).
 */
#include "worker/worker_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const worker_opt worker__shard_opts[] = {
    WORKER_TEXT("out", out, "FILE", "the shard to write (atomically)"),
    WORKER_TEXT("split", split, "train|heldout|all",
                "only the documents of this split (default all)"),
    WORKER_TEXT("tags", tags, "TSV", "the language tags, code<TAB>tag id per line"),
    WORKER_TEXT("tokenizer", tokenizer, "FILE",
                "a tokenizer.json or a checkpoint whose tokenizer makes the ids (default "
                "bytes)"),
    WORKER_OPT_END,
};

int worker__cmd_shard(worker_ctx *w, worker_args *o)
{
  mn_error err = {0};
  tok_tags tags = {0};
  shard_builder *b = NULL;
  int rc = MN_EXIT_FAIL;
  if (!o->out || o->npos < 1)
    return worker__usage("shard needs --out FILE and at least one JSONL file");
  const char *split = o->split ? o->split : "all";
  if (strcmp(split, "all") && strcmp(split, "train") && strcmp(split, "heldout"))
    return worker__usage("--split must be train, heldout or all, got \"%s\"", split);
  tokenizer *tkz = NULL;
  tok_tags own; /* the tags the tokenizer or checkpoint carries */
  if ((o->tokenizer ? tok_load(o->tokenizer, &tkz, &own, &err) : tok_create_bytes(&tkz, &err)) !=
      MN_OK)
    return worker__fail(&err);
  if (o->tags) { /* the database's numbering, moved onto the tokenizer's */
    if (tok_tags_read(o->tags, &tags, &err) != MN_OK ||
        tok_tags_rebase(&tags, TOK_FIRST_TAG, tok_base(tkz), &err) != MN_OK)
      goto out;
  } else if (o->tokenizer) {
    tags = own;
  }
  if (shard_builder_create(tkz, &tags, &b, &err) != MN_OK) goto out;
  int64_t docs = 0, skipped = 0;
  for (int i = 0; i < o->npos; i++) {
    mn_jsonl in;
    json_t *r = NULL;
    mn_status s = mn_jsonl_open(&in, o->pos[i], &err);
    while (s == MN_OK && (s = mn_jsonl_next(&in, &r, &err)) == MN_OK && r) {
      const char *lang = mn_json_str(json_object_get(r, "lang"));
      json_t *t = json_object_get(r, "text");
      if (!lang || !json_is_string(t)) {
        s = mn_jsonl_fail(&in, &err, MN_ERR_INPUT, "expected {\"lang\": ..., \"text\": ...}");
        json_decref(r);
        break;
      }
      const char *text = json_string_value(t);
      size_t tn = json_string_length(t);
      bool keep = true, held, by_hash;
      if (strcmp(split, "all") != 0) { /* the record's stored split, or the hash rule */
        s = evalset_record_split(r, text, tn, w->cfg.ingest.heldout_fraction, &held, &by_hash,
                                 &err);
        keep = s == MN_OK && held == (strcmp(split, "heldout") == 0);
      }
      if (keep) s = shard_builder_add(b, lang, text, tn, &err);
      json_decref(r);
      if (s != MN_OK) {
        mn_error_prefix(&err, "%s:%lld", o->pos[i], (long long)in.line_no);
        break;
      }
      docs += keep;
      skipped += !keep;
    }
    if (in.f) mn_jsonl_close(&in);
    if (s != MN_OK) goto out;
  }
  if (shard_builder_write(b, o->out, &err) != MN_OK) goto out;
  json_t *langs = json_object();
  for (int i = 0; i < tags.n; i++)
    json_object_set_new(langs, tags.t[i].code, json_integer(tags.t[i].id));
  worker__emit(json_pack("{s:s, s:s, s:I, s:I, s:s, s:o}", "event", "shard", "out", o->out,
                         "documents", (json_int_t)docs, "skipped", (json_int_t)skipped, "split",
                         split, "tags", langs));
  rc = MN_EXIT_OK;
out:
  shard_builder_destroy(b);
  tok_destroy(tkz);
  return rc == MN_EXIT_OK ? rc : worker__fail(&err);
}
