/*
 * card.c -- a checkpoint's card (card.h): one query builds the JSON, C renders Markdown.
 * Names, licences and notes in the Markdown are escaped (str): people wrote them.
 */
#include "daemon/card.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mn_status card_json(PGconn *c, int64_t id, json_t **out, mn_error *err)
{
  char ids[32];
  snprintf(ids, sizeof ids, "%lld", (long long)id);
  const char *p[] = {ids};
  *out = NULL;
  PGresult *r = PQexecParams(
      c,
      "SELECT json_build_object('checkpoint', c.id, 'parent', c.parent_id, 'state', c.state,"
      " 'sha256', c.sha256, 'job', c.job_id, 'watermark', c.watermark,"
      " 'reasons', nullif(c.reasons, ''), 'created_at', mnemo.iso(c.created_at),"
      " 'data', (SELECT coalesce(json_agg(x ORDER BY x.lang, x.source), '[]') FROM ("
      "   SELECT d.lang, l.name AS language, s.name AS source, s.licence, count(*) AS documents,"
      "          sum(d.bytes)::bigint AS bytes, min(d.id) AS first_id, max(d.id) AS last_id"
      "     FROM mnemo.documents d JOIN mnemo.sources s ON s.id = d.source_id"
      "     JOIN mnemo.languages l ON l.code = d.lang"
      "    WHERE d.consumed_by = c.id GROUP BY d.lang, l.name, s.name, s.licence) x),"
      " 'verdict', c.verdict,"
      " 'retry', (SELECT json_build_object('of_job', j.retry_of, 'protect', j.protect)"
      "   FROM mnemo.jobs j WHERE j.id = c.job_id AND j.retry_of IS NOT NULL),"
      " 'approvals', (SELECT coalesce(json_agg(json_build_object('decision', a.decision,"
      "   'by', a.by_user, 'note', nullif(a.note, ''), 'at', mnemo.iso(a.at)) ORDER BY a.id), '[]')"
      "   FROM mnemo.approvals a WHERE a.ckpt_id = c.id),"
      " 'promotions', (SELECT coalesce(json_agg(json_build_object('kind', m.kind,"
      "   'previous', m.previous_id, 'documents', m.documents, 'by', m.by_user, 'note', "
      "nullif(m.note, ''),"
      "   'at', mnemo.iso(m.at)) ORDER BY m.id), '[]') FROM mnemo.promotions m"
      "   WHERE m.ckpt_id = c.id))"
      " FROM mnemo.checkpoints c WHERE c.id = $1::bigint",
      1, NULL, p, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    mn_status rc = db_error(c, r, "read the checkpoint's card", err);
    PQclear(r);
    return rc;
  }
  if (PQntuples(r) != 1) {
    PQclear(r);
    return mn_error_set(err, MN_ERR_INPUT, "no checkpoint %lld", (long long)id);
  }
  json_error_t je;
  *out = json_loads(PQgetvalue(r, 0, 0), 0, &je);
  PQclear(r);
  if (!*out) return mn_error_set(err, MN_ERR_INTERNAL, "the card's JSON: %s", je.text);
  return MN_OK;
}

/* str -- o[k] for the Markdown: control characters escaped (mn_text_escape), so a source
 * name or a note cannot add lines, and "|" as "\\|", so it cannot add table cells.  The
 * result lives in a per-thread slot until 8 more calls (one row uses at most four). */
static const char *str(const json_t *o, const char *k)
{
  static _Thread_local char slots[8][1024];
  static _Thread_local unsigned next;
  char tmp[512], *out = slots[next++ % 8];
  const char *s = json_string_value(json_object_get(o, k));
  bool cut = false;
  mn_text_escape(s ? s : "", s ? strlen(s) : 0, 0, tmp, sizeof tmp, &cut);
  size_t w = 0;
  for (const char *p = tmp; *p && w + 2 < sizeof slots[0] - 4; p++) {
    if (*p == '|') out[w++] = '\\';
    out[w++] = *p;
  }
  if (cut) memcpy(out + w, "...", 3), w += 3;
  out[w] = '\0';
  return out;
}

mn_status card_markdown(const json_t *card, mn_buf *b, mn_error *err)
{
  mn_status rc = mn_buf_appendf(
      b, err,
      "# mnemo checkpoint %lld\n\n"
      "- state: %s\n- parent: %lld\n- weights sha256: `%s`\n- made by job %lld, created %s\n"
      "- fresh documents: train documents with id <= %lld not consumed before\n",
      (long long)json_integer_value(json_object_get(card, "checkpoint")), str(card, "state"),
      (long long)json_integer_value(json_object_get(card, "parent")), str(card, "sha256"),
      (long long)json_integer_value(json_object_get(card, "job")), str(card, "created_at"),
      (long long)json_integer_value(json_object_get(card, "watermark")));
  size_t i;
  json_t *x;
  const json_t *retry = json_object_get(card, "retry");
  if (rc == MN_OK && json_is_object(retry)) /* the guard in the loop made it */
    rc = mn_buf_appendf(b, err,
                        "- a guard's retry of refresh %lld, whose candidate was rejected: these "
                        "languages' replay shares were multiplied: %s\n",
                        (long long)json_integer_value(json_object_get(retry, "of_job")),
                        str(retry, "protect"));
  if (rc == MN_OK)
    rc = mn_buf_appendf(
        b, err,
        "\n## Data it absorbed, per language and source\n\n"
        "| language | source | licence | documents | bytes |\n|---|---|---|---:|---:|\n");
  json_array_foreach(json_object_get(card, "data"), i, x)
  {
    if (rc != MN_OK) break;
    rc = mn_buf_appendf(b, err, "| %s (%s) | %s | %s | %lld | %lld |\n", str(x, "lang"),
                        str(x, "language"), str(x, "source"), str(x, "licence"),
                        (long long)json_integer_value(json_object_get(x, "documents")),
                        (long long)json_integer_value(json_object_get(x, "bytes")));
  }
  const json_t *v = json_object_get(card, "verdict");
  if (rc == MN_OK && json_is_object(v)) {
    rc = mn_buf_appendf(b, err,
                        "\n## Guards: %s\n\n| language | outcome | items | baseline bpb | "
                        "candidate bpb | change |\n|---|---|---:|---:|---:|---:|\n",
                        json_is_true(json_object_get(v, "pass")) ? "pass" : "fail");
    json_array_foreach(json_object_get(v, "languages"), i, x)
    {
      if (rc != MN_OK) break;
      rc = mn_buf_appendf(b, err, "| %s | %s | %lld | %.4f | %.4f | %+.2f%% |\n", str(x, "lang"),
                          str(x, "outcome"),
                          (long long)json_integer_value(json_object_get(x, "items")),
                          json_number_value(json_object_get(x, "baseline_bpb")),
                          json_number_value(json_object_get(x, "candidate_bpb")),
                          100 * json_number_value(json_object_get(x, "change")));
    }
    const json_t *par = json_object_get(v, "parity");
    if (rc == MN_OK && par)
      rc = mn_buf_appendf(b, err, "\nParity gap: %s -- %s\n", str(par, "outcome"),
                          str(par, "reason"));
  }
  if (rc == MN_OK) rc = mn_buf_appendf(b, err, "\n## Decisions\n\n");
  json_array_foreach(json_object_get(card, "approvals"), i, x)
  {
    if (rc != MN_OK) break;
    rc = mn_buf_appendf(b, err, "- %s by %s at %s: %s\n", str(x, "decision"), str(x, "by"),
                        str(x, "at"), str(x, "note"));
  }
  json_array_foreach(json_object_get(card, "promotions"), i, x)
  {
    if (rc != MN_OK) break;
    rc = mn_buf_appendf(b, err, "- %s by %s at %s (previous production: %lld, documents: %lld)\n",
                        str(x, "kind"), str(x, "by"), str(x, "at"),
                        (long long)json_integer_value(json_object_get(x, "previous")),
                        (long long)json_integer_value(json_object_get(x, "documents")));
  }
  return rc;
}

mn_status card_write(PGconn *c, int64_t id, const char *dir, mn_error *err)
{
  json_t *card = NULL;
  mn_status rc = card_json(c, id, &card, err);
  if (rc != MN_OK) return rc;
  char path[PATH_MAX];
  char *js = json_dumps(card, JSON_INDENT(2));
  snprintf(path, sizeof path, "%s/card.json", dir);
  rc = js ? mn_write_file_atomic(path, js, strlen(js), 0644, err)
          : mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  free(js);
  mn_buf md;
  mn_buf_init(&md, 1 << 22);
  if (rc == MN_OK) rc = card_markdown(card, &md, err);
  snprintf(path, sizeof path, "%s/card.md", dir);
  if (rc == MN_OK) rc = mn_write_file_atomic(path, md.data, md.len, 0644, err);
  mn_buf_fini(&md);
  json_decref(card);
  return rc;
}
