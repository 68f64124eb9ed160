/*
 * cmd_shard.c -- `mnemo shard`: JSONL documents into a token shard (trainer/shard.c), all
 * of them or one split (each record's stored "split", else the hash rule).
 *
 * Language tags are never numbered here.  They come from the database's table (--tags, as
 * `mnemoctl export` writes it), from a checkpoint's metadata (--checkpoint), or from both when
 * they agree; a document in a language neither has a tag for is refused by file:line.  So two
 * shards of the same languages have the same tags whatever order their documents came in,
 * and a shard's tags are the ones its model was (or will be) trained with.
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
    WORKER_TEXT("tags", tags, "TSV",
                "the database's language tags, code<TAB>tag id a line (mnemoctl export writes "
                "DIR/tags.tsv)"),
    WORKER_TEXT("checkpoint", checkpoint, "CKPT",
                "the language tags of this checkpoint (with --tags: they must agree)"),
    WORKER_OPT_END,
};

/* merge_checkpoint_tags -- add the checkpoint's tags (ck, read from ck_path) to the table read
 * from tags_path, refusing any language or id the two number differently */
static mn_status merge_checkpoint_tags(tok_tags *tags, const char *tags_path, const tok_tags *ck,
                                       const char *ck_path, mn_error *err)
{
  for (int i = 0; i < ck->n; i++) {
    const char *code = ck->t[i].code;
    int id = ck->t[i].id, have = tok_tag_of(tags, code);
    const char *owner = tok_code_of(tags, id);
    if (have >= 0 && have != id)
      return mn_error_set(err, MN_ERR_INPUT,
                          "language \"%s\" has tag %d in %s but tag %d in the checkpoint %s", code,
                          have, tags_path, id, ck_path);
    if (have < 0 && owner)
      return mn_error_set(err, MN_ERR_INPUT,
                          "tag %d is language \"%s\" in %s but language \"%s\" in the checkpoint "
                          "%s",
                          id, owner, tags_path, code, ck_path);
    mn_status rc = tok_tags_add(tags, code, id, err);
    if (rc != MN_OK) return mn_error_prefix(err, "%s", ck_path);
  }
  return MN_OK;
}

/* load_tags -- the tag table of --tags, --checkpoint or both (checked to agree) */
static mn_status load_tags(const worker_args *o, tok_tags *tags, mn_error *err)
{
  mn_status rc = MN_OK;
  ckpt_meta *meta = NULL;
  if (o->tags && (rc = tok_tags_read(o->tags, tags, err)) != MN_OK) return rc;
  if (!o->checkpoint) return MN_OK;
  meta = calloc(1, sizeof *meta); /* large: its lineage and a full tag table */
  if (!meta) return mn_error_set(err, MN_ERR_NOMEM, "out of memory reading a checkpoint");
  rc = ckpt_read_meta(o->checkpoint, meta, err);
  if (rc == MN_OK && o->tags)
    rc = merge_checkpoint_tags(tags, o->tags, &meta->tags, o->checkpoint, err);
  else if (rc == MN_OK)
    *tags = meta->tags;
  free(meta);
  return rc;
}

/* no_tag -- the error for a language the table has no tag for (the caller adds file:line) */
static mn_status no_tag(const worker_args *o, const char *lang, mn_error *err)
{
  if (o->tags)
    mn_error_set(err, MN_ERR_INPUT, "language \"%s\" has no tag in %s%s%s", lang, o->tags,
                 o->checkpoint ? " nor in the checkpoint " : "",
                 o->checkpoint ? o->checkpoint : "");
  else
    mn_error_set(err, MN_ERR_INPUT, "language \"%s\" has no tag in the checkpoint %s", lang,
                 o->checkpoint);
  return mn_error_detail(err,
                         "the database assigns each language's tag once: add the language "
                         "(mnemoctl lang add %s --script SCRIPT) and export the table again "
                         "(mnemoctl export --out DIR writes DIR/tags.tsv), then pass --tags",
                         lang);
}

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
  if (!o->tags && !o->checkpoint)
    return worker__usage("shard needs the language tags: --tags TSV, the database's table "
                         "(mnemoctl export --out DIR writes DIR/tags.tsv), or --checkpoint "
                         "CKPT, the tags of the model the shard is for");
  if (load_tags(o, &tags, &err) != MN_OK) return worker__fail(&err);
  if (shard_builder_create(&tags, &b, &err) != MN_OK) return worker__fail(&err);
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
      /* a tag is the table's or nothing: the builder must never number one itself */
      if (keep && tok_tag_of(&tags, lang) < 0) s = no_tag(o, lang, &err);
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
  return rc == MN_EXIT_OK ? rc : worker__fail(&err);
}
