/*
 * cmd_shard.c -- `mnemo shard`: JSONL documents into a token shard (trainer/shard.c), all
 * of them or one split (each record's stored "split", else the hash rule), tokenized by the
 * byte tokenizer, a tokenizer.json, or the tokenizer a checkpoint carries.
 *
 * Language tags are never numbered here.  They come from the database's table (--tags, as
 * `mnemoctl export` writes it, moved onto the tokenizer's first tag id), from a checkpoint's
 * metadata (--checkpoint), from the tokenizer's own tags, or from several of these when they
 * agree; a document in a language none has a tag for is refused by file:line.  So two shards
 * of the same languages have the same tags whatever order their documents came in, and a
 * shard's tags are the ones its model was (or will be) trained with.
 */
#include "worker/worker_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const worker_opt worker__shard_opts[] = {
    WORKER_TEXT("out", out, "FILE", "the shard to write (atomically)"),
    WORKER_TEXT("split", split, "train|heldout|all",
                "only the documents of this split (default: all)"),
    WORKER_TEXT("tags", tags, "TSV",
                "the database's language tags, code<TAB>tag id a line (mnemoctl export writes "
                "DIR/tags.tsv)"),
    WORKER_TEXT("checkpoint", checkpoint, "CKPT",
                "the language tags (and, without --tokenizer, the tokenizer) of this checkpoint; "
                "with --tags they must agree"),
    WORKER_TEXT("tokenizer", tokenizer, "FILE",
                "a tokenizer.json or a checkpoint whose tokenizer makes the ids (default: "
                "bytes)"),
    WORKER_OPT_END,
};

/* merge_tags -- add the tags of `add` (named add_name) to tags (named tags_name), refusing any
 * language or id the two number differently */
static mn_status merge_tags(tok_tags *tags, const char *tags_name, const tok_tags *add,
                            const char *add_name, mn_error *err)
{
  for (int i = 0; i < add->n; i++) {
    const char *code = add->t[i].code;
    int id = add->t[i].id, have = tok_tag_of(tags, code);
    const char *owner = tok_code_of(tags, id);
    if (have >= 0 && have != id)
      return mn_error_set(err, MN_ERR_INPUT, "language \"%s\" has tag %d in %s but tag %d in %s",
                          code, have, tags_name, id, add_name);
    if (have < 0 && owner)
      return mn_error_set(err, MN_ERR_INPUT,
                          "tag %d is language \"%s\" in %s but language \"%s\" in %s", id, owner,
                          tags_name, code, add_name);
    mn_status rc = tok_tags_add(tags, code, id, err);
    if (rc != MN_OK) return mn_error_prefix(err, "%s", add_name);
  }
  return MN_OK;
}

/* load_tags -- the tokenizer (*tkz, the caller's) and the tag table of --tags, --checkpoint
 * and the tokenizer's own, checked to agree; *names says where they came from, for errors */
static mn_status load_tags(const worker_args *o, tokenizer **tkz, tok_tags *tags, char *names,
                           size_t nn, mn_error *err)
{
  mn_status rc = MN_OK;
  tok_tags *own = calloc(1, sizeof *own); /* the tokenizer's (or its checkpoint's) */
  ckpt_meta *meta = NULL;                 /* large: its lineage and a full tag table */
  if (o->checkpoint && o->tokenizer) meta = calloc(1, sizeof *meta);
  char name[1100];
  names[0] = 0;
  if (!own || (o->checkpoint && o->tokenizer && !meta)) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory reading the language tags");
    goto out;
  }
  const char *tok_path = o->tokenizer ? o->tokenizer : o->checkpoint;
  rc = tok_path ? tok_load(tok_path, tkz, own, err) : tok_create_bytes(tkz, err);
  if (rc != MN_OK) goto out;
  if (o->tags) { /* the database's numbering, moved onto the tokenizer's */
    if ((rc = tok_tags_read(o->tags, tags, err)) != MN_OK ||
        (rc = tok_tags_rebase(tags, TOK_FIRST_TAG, tok_base(*tkz), err)) != MN_OK)
      goto out;
    snprintf(names, nn, "%s", o->tags);
  }
  if (meta) { /* --checkpoint's tags beside another tokenizer's */
    if ((rc = ckpt_read_meta(o->checkpoint, meta, err)) != MN_OK) goto out;
    if (strcmp(meta->tok_sha256, tok_sha256(*tkz)) != 0) {
      rc = mn_error_set(err, MN_ERR_INPUT,
                        "the tokenizer %s (%.16s) is not the checkpoint %s's (%.16s): give one "
                        "of them",
                        o->tokenizer, tok_sha256(*tkz), o->checkpoint, meta->tok_sha256);
      goto out;
    }
    snprintf(name, sizeof name, "the checkpoint %s", o->checkpoint);
    if ((rc = merge_tags(tags, names, &meta->tags, name, err)) != MN_OK) goto out;
    snprintf(names + strlen(names), nn - strlen(names), "%s%s", names[0] ? " nor in " : "", name);
  }
  if (tok_path) {
    snprintf(name, sizeof name, "the %s %s", tok_path == o->checkpoint ? "checkpoint" : "tokenizer",
             tok_path);
    if ((rc = merge_tags(tags, names, own, name, err)) != MN_OK) goto out;
    if (own->n > 0 || !o->tokenizer)
      snprintf(names + strlen(names), nn - strlen(names), "%s%s", names[0] ? " nor in " : "", name);
  }
out:
  free(own);
  free(meta);
  return rc;
}

int worker__cmd_shard(worker_ctx *w, worker_args *o)
{
  mn_error err = {0};
  tok_tags tags = {0};
  tokenizer *tkz = NULL;
  shard_builder *b = NULL;
  char names[4096];
  int rc = MN_EXIT_FAIL;
  if (!o->out || o->npos < 1)
    return worker__usage("shard needs --out FILE and at least one JSONL file");
  const char *split = o->split ? o->split : "all";
  if (strcmp(split, "all") && strcmp(split, "train") && strcmp(split, "heldout"))
    return worker__usage("--split must be train, heldout or all, got \"%s\"", split);
  if (!o->tags && !o->checkpoint && !o->tokenizer)
    return worker__usage("shard needs the language tags: --tags TSV, the database's table "
                         "(mnemoctl export --out DIR writes DIR/tags.tsv), or --checkpoint "
                         "CKPT, the tags of the model the shard is for");
  if (load_tags(o, &tkz, &tags, names, sizeof names, &err) != MN_OK) goto out;
  if (tags.n == 0) { /* an empty table, or a tokenizer without tags of its own */
    mn_error_set(&err, MN_ERR_USAGE, "shard needs the language tags, and %s has none",
                 names[0] ? names : o->tokenizer);
    mn_error_detail(&err, "give --tags TSV (mnemoctl export --out DIR writes DIR/tags.tsv) or "
                          "--checkpoint CKPT");
    goto out;
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
      /* a tag is the table's or nothing: say where the table came from and where to get one */
      if (keep && s == MN_OK && tok_tag_of(&tags, lang) < 0) {
        s = mn_error_set(&err, MN_ERR_INPUT, "language \"%s\" has no tag in %s", lang, names);
        mn_error_detail(&err,
                        "the database assigns each language's tag once: add the language "
                        "(mnemoctl lang add %s --script SCRIPT) and export the table again "
                        "(mnemoctl export --out DIR writes DIR/tags.tsv), then pass --tags",
                        lang);
      }
      if (keep && s == MN_OK) s = shard_builder_add(b, lang, text, tn, &err);
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
