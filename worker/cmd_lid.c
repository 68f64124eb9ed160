/*
 * cmd_lid.c -- `mnemo lid train` and `mnemo lid`: the language identifier of triage/lid.c,
 * trained from JSONL, and applied to each line of a file (plain text or JSONL "text").
 */
#define _XOPEN_SOURCE 700 /* getline */
#include "triage/lid.h"
#include "worker/worker_int.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const worker_opt worker__lid_train_opts[] = {
    WORKER_TEXT("out", out, "MODEL", "the model to write"),
    WORKER_COUNT_UP_TO("max-bytes", max_bytes, "N", WORKER_BIG,
                       "text read per language at most (0: all)"),
    WORKER_OPT_END,
};

const worker_opt worker__lid_opts[] = {
    WORKER_TEXT("model", model, "MODEL", "the model, from \"mnemo lid train\""),
    WORKER_OPT_END,
};

int worker__cmd_lid_train(worker_ctx *w, worker_args *o)
{
  (void)w;
  if (!o->out || o->npos < 1)
    return worker__usage(
        "lid train needs --out MODEL and at least one JSONL file of {\"lang\", \"text\"}");
  mn_error err = {0};
  lid_model *m = NULL;
  double t0 = mn_monotonic_ms();
  if (lid_train((const char *const *)o->pos, o->npos, o->max_bytes, &m, &err) != MN_OK ||
      lid_save(m, o->out, &err) != MN_OK) {
    lid_destroy(m);
    return worker__fail(&err);
  }
  worker__emit(json_pack("{s:s, s:s, s:i, s:f}", "event", "lid_train", "out", o->out, "languages",
                         lid_languages(m), "seconds", (mn_monotonic_ms() - t0) / 1e3));
  lid_destroy(m);
  return MN_EXIT_OK;
}

/* lid_line -- one text: a JSONL record's "text" (and "id") or the line itself */
static void lid_line(const lid_model *m, char *line, size_t n, int64_t ln, bool json)
{
  while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
    line[--n] = 0;
  json_t *rec = n && line[0] == '{' ? json_loadb(line, n, 0, NULL) : NULL;
  const char *text = line;
  size_t len = n;
  if (rec) {
    json_t *t = json_object_get(rec, "text");
    text = json_string_value(t) ? json_string_value(t) : "";
    len = json_string_length(t);
  }
  json_t *id = rec ? json_object_get(rec, "id") : NULL;
  size_t bad = 0;
  mn_utf8_problem up = mn_utf8_check(text, len, &bad);
  lid_result r;
  if (up == MN_UTF8_OK) lid_classify(m, text, len, &r);
  if (json) {
    json_t *o = json_pack("{s:I}", "line", (json_int_t)ln);
    if (id) json_object_set(o, "id", id);
    if (up != MN_UTF8_OK) {
      char why[96];
      snprintf(why, sizeof why, "invalid text: %s at byte %zu", mn_utf8_problem_str(up), bad);
      json_object_set_new(o, "lang", json_string("und"));
      json_object_set_new(o, "error", json_string(why));
    } else {
      json_t *sp = json_array();
      for (int i = 0; i < r.nspans; i++)
        json_array_append_new(sp, json_pack("{s:s, s:I, s:I}", "lang", r.spans[i].lang, "start",
                                            (json_int_t)r.spans[i].start, "end",
                                            (json_int_t)r.spans[i].end));
      json_t *res = json_pack("{s:s, s:f, s:s, s:f, s:f, s:b, s:o}", "lang", r.lang, "confidence",
                              r.confidence, "second", r.second, "second_confidence",
                              r.second_confidence, "fit", r.fit, "mixed", r.mixed, "spans", sp);
      json_object_update(o, res);
      json_decref(res);
    }
    worker__emit(o);
  } else if (up != MN_UTF8_OK) {
    printf("und\t0.000\tinvalid text: %s at byte %zu\n", mn_utf8_problem_str(up), bad);
  } else {
    printf("%s\t%.3f", r.lang, r.confidence);
    if (r.mixed) {
      printf("\tmixed:");
      for (int i = 0; i < r.nspans; i++)
        printf(" %s[%zu,%zu)", r.spans[i].lang, r.spans[i].start, r.spans[i].end);
    }
    printf("\n");
  }
  json_decref(rec);
}

int worker__cmd_lid(worker_ctx *w, worker_args *o)
{
  if (!o->model || o->npos > 1)
    return worker__usage("lid needs --model MODEL (from \"mnemo lid train\") and at most one FILE");
  mn_error err = {0};
  lid_model *m = NULL;
  if (lid_load(o->model, &m, &err) != MN_OK) return worker__fail(&err);
  FILE *f = o->npos ? fopen(o->pos[0], "r") : stdin;
  if (!f) {
    lid_destroy(m);
    mn_error_set(&err, MN_ERR_IO, "could not open \"%s\": %s", o->pos[0], strerror(errno));
    return worker__fail(&err);
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t got;
  int64_t ln = 0;
  while ((got = getline(&line, &cap, f)) > 0)
    lid_line(m, line, (size_t)got, ++ln, w->json);
  int code = ferror(f) || !feof(f) ? MN_EXIT_FAIL : MN_EXIT_OK; /* getline fails on ENOMEM too */
  if (code != MN_EXIT_OK)
    fprintf(stderr, "mnemo: could not read %s\n", o->npos ? o->pos[0] : "stdin");
  free(line);
  if (f != stdin) fclose(f);
  lid_destroy(m);
  return code;
}
