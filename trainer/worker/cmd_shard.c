/*
 * cmd_shard.c -- `mnemo shard`: JSONL documents into a token shard (trainer/shard.c), and
 * the reading of the shards and tag tables that other commands name on their command line.
 */
#define _XOPEN_SOURCE 700 /* getline */
#include "trainer/worker/worker_int.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const worker_opt worker__shard_opts[] = {
    WORKER_TEXT("out", out, "FILE", "the shard to write (atomically)"),
    WORKER_TEXT("split", split, "train|heldout|all",
                "only the documents of this split (default all)"),
    WORKER_TEXT("tags", tags, "TSV", "the language tags, code<TAB>tag id per line"),
    WORKER_OPT_END,
};

mn_status worker__read_shards(const worker_args *o, shard **out, mn_error *err)
{
  shard *s = calloc((size_t)o->npos, sizeof *s);
  *out = NULL;
  if (!s) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  for (int i = 0; i < o->npos; i++) {
    mn_status rc = shard_read(o->pos[i], &s[i], err);
    if (rc != MN_OK) {
      for (int k = 0; k < i; k++)
        shard_free(&s[k]);
      free(s);
      return rc;
    }
  }
  *out = s;
  return MN_OK;
}

void worker__free_shards(shard *s, int n)
{
  for (int i = 0; s && i < n; i++)
    shard_free(&s[i]);
  free(s);
}

/* worker__read_tags -- a TSV of code <tab> tag id, as the database assigned them */
mn_status worker__read_tags(const char *path, tok_tags *tags, mn_error *err)
{
  FILE *f = fopen(path, "r");
  if (!f) return mn_error_set(err, MN_ERR_IO, "could not open \"%s\": %s", path, strerror(errno));
  char line[256];
  int ln = 0;
  while (fgets(line, sizeof line, f)) {
    ln++;
    char code[16];
    int id;
    if (sscanf(line, "%15s %d", code, &id) != 2 || tok_tags_add(tags, code, id, err) != MN_OK) {
      fclose(f);
      if (!err->msg[0])
        return mn_error_set(err, MN_ERR_INPUT, "%s:%d: expected \"code<TAB>tag\"", path, ln);
      return mn_error_prefix(err, "%s:%d", path, ln);
    }
  }
  fclose(f);
  return MN_OK;
}

int worker__cmd_shard(worker *w, worker_args *o)
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
  if (o->tags && worker__read_tags(o->tags, &tags, &err) != MN_OK) return worker__fail(&err);
  if (shard_builder_create(&tags, &b, &err) != MN_OK) return worker__fail(&err);
  int64_t docs = 0, skipped = 0;
  for (int i = 0; i < o->npos; i++) {
    FILE *f = fopen(o->pos[i], "r");
    if (!f) {
      mn_error_set(&err, MN_ERR_IO, "could not open \"%s\": %s", o->pos[i], strerror(errno));
      goto out;
    }
    char *l = NULL;
    size_t cap = 0;
    ssize_t n;
    int64_t ln = 0;
    while ((n = getline(&l, &cap, f)) > 0) {
      ln++;
      json_error_t je;
      json_t *r = json_loadb(l, (size_t)n, JSON_ALLOW_NUL, &je);
      const char *lang = json_string_value(json_object_get(r, "lang"));
      json_t *t = json_object_get(r, "text");
      if (!lang || !json_is_string(t)) {
        json_decref(r);
        if (n <= 1) continue; /* a blank line */
        mn_error_set(&err, MN_ERR_INPUT, "%s:%lld: expected {\"lang\": ..., \"text\": ...}",
                     o->pos[i], (long long)ln);
        free(l);
        fclose(f);
        goto out;
      }
      const char *text = json_string_value(t);
      size_t tn = json_string_length(t);
      bool keep = true, held, by_hash;
      mn_status s = MN_OK;
      if (strcmp(split, "all") != 0) { /* the record's stored split, or the hash rule */
        s = evalset__record_split(r, text, tn, w->cfg.ingest.heldout_fraction, &held, &by_hash,
                                  &err);
        keep = s == MN_OK && held == (strcmp(split, "heldout") == 0);
      }
      if (keep) s = shard_builder_add(b, lang, text, tn, &err);
      json_decref(r);
      if (s != MN_OK) {
        mn_error_prefix(&err, "%s:%lld", o->pos[i], (long long)ln);
        free(l);
        fclose(f);
        goto out;
      }
      docs += keep;
      skipped += !keep;
    }
    free(l);
    fclose(f);
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
