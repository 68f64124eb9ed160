/*
 * outbox.c -- webhook delivery (outbox.h): a thread with its own connection sends the
 * pending rows of mnemo.outbox, which each event of interest wrote in its own transaction.
 *
 * Standard Webhooks: POST the payload with webhook-id (evt_<event id>, the same on every
 * retry, so receivers deduplicate), webhook-timestamp and webhook-signature.  A 2xx
 * delivers; 410 Gone marks the event dead (the receiver asked to stop); anything else is
 * retried with a doubling wait from 1 s to 1 h, up to webhooks.max_attempts.  libcurl
 * with CURLOPT_NOSIGNAL, connect and total time limits, no redirects, http(s) only.  The
 * daemon's loop never waits for a receiver: it only wakes this thread.  The thread, its
 * connection and its backoff are bgthread.h's; this file is what one round does.
 */
#include "daemon/outbox.h"
#include "daemon/bgthread.h"
#include "daemon/daemon.h"
#include "daemon/webhook.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct outbox {
  bgthread *bg;
  CURL *h; /* used by the thread only, once it runs */
  char *url;
  mn_webhook_key key;
  int64_t timeout_s, max_attempts;
};

static size_t discard(char *p, size_t size, size_t n, void *u)
{
  (void)p, (void)u;
  return size * n;
}

/* deliver -- one POST; *status the HTTP code (0: no response) and why when it failed */
static void deliver(outbox *o, CURL *h, const char *id, const char *body, long *status, char *why,
                    size_t whylen)
{
  mn_error err = {0};
  char sig[MN_WEBHOOK_SIG_LEN + 1], hid[300], hts[64], hsig[128];
  int64_t ts = (int64_t)time(NULL);
  *status = 0;
  why[0] = 0;
  if (mn_webhook_sign(&o->key, id, ts, body, strlen(body), sig, &err) != MN_OK) {
    snprintf(why, whylen, "%s", err.msg);
    return;
  }
  snprintf(hid, sizeof hid, "webhook-id: %s", id);
  snprintf(hts, sizeof hts, "webhook-timestamp: %lld", (long long)ts);
  snprintf(hsig, sizeof hsig, "webhook-signature: %s", sig);
  struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
  hd = curl_slist_append(hd, hid);
  hd = curl_slist_append(hd, hts);
  hd = curl_slist_append(hd, hsig);
  char ebuf[CURL_ERROR_SIZE] = "";
  curl_easy_reset(h);
  curl_easy_setopt(h, CURLOPT_URL, o->url);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)o->timeout_s);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)o->timeout_s);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
  CURLcode cc = curl_easy_perform(h);
  if (cc == CURLE_OK) {
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    if (*status < 200 || *status > 299) snprintf(why, whylen, "HTTP %ld", *status);
  } else {
    snprintf(why, whylen, "%s", ebuf[0] ? ebuf : curl_easy_strerror(cc));
  }
  curl_slist_free_all(hd);
}

/* round -- send what is due; returns ms until the next retry is due (-1: none) or -2 when
 * the connection failed */
static int64_t round_once(outbox *o, bgthread *bg, PGconn *c)
{
  PGresult *r = PQexec(c, "SELECT id, event_id, type, payload::text, attempts FROM mnemo.outbox"
                          " WHERE state = 'pending' AND next_at <= now() ORDER BY id LIMIT 20");
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    mn_log(MN_LOG_WARN, "webhooks: could not read the outbox", MN_KV_S("error", PQerrorMessage(c)));
    PQclear(r);
    return -2;
  }
  for (int i = 0; i < PQntuples(r) && !bgthread_stopping(bg); i++) {
    char id[64], why[CURL_ERROR_SIZE + 64], att[32], dead[8];
    long status;
    snprintf(id, sizeof id, "evt_%s", PQgetvalue(r, i, 1));
    deliver(o, o->h, id, PQgetvalue(r, i, 3), &status, why, sizeof why);
    int64_t attempts = strtoll(PQgetvalue(r, i, 4), NULL, 10) + 1;
    bool ok = status >= 200 && status <= 299;
    bool gone = status == 410 || (!ok && attempts >= o->max_attempts);
    snprintf(att, sizeof att, "%lld", (long long)attempts);
    snprintf(dead, sizeof dead, "%s", gone ? "t" : "f");
    const char *p[] = {PQgetvalue(r, i, 0), att, ok ? NULL : why, dead};
    PGresult *u = PQexecParams(
        c,
        "UPDATE mnemo.outbox SET attempts = $2::int, last_error = $3::text,"
        " state = CASE WHEN $3::text IS NULL THEN 'delivered' WHEN $4::bool THEN 'dead'"
        "              ELSE 'pending' END,"
        " delivered_at = CASE WHEN $3::text IS NULL THEN now() END,"
        " next_at = now() + make_interval(secs => least(power(2, $2::int - 1), 3600))"
        " WHERE id = $1::bigint",
        4, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(u) != PGRES_COMMAND_OK) { /* unrecorded: back off, never resend hot */
      mn_log(MN_LOG_WARN, "webhooks: could not record a delivery",
             MN_KV_S("error", PQerrorMessage(c)));
      PQclear(u);
      PQclear(r);
      return -2;
    }
    PQclear(u);
    if (ok)
      mn_log(MN_LOG_INFO, "webhook delivered", MN_KV_S("id", id),
             MN_KV_S("type", PQgetvalue(r, i, 2)), MN_KV_I("attempts", attempts));
    else
      mn_log(MN_LOG_WARN, gone ? "webhook given up" : "webhook failed; will retry",
             MN_KV_S("id", id), MN_KV_S("type", PQgetvalue(r, i, 2)), MN_KV_I("attempts", attempts),
             MN_KV_S("error", why));
  }
  PQclear(r);
  r = PQexec(c, "SELECT ceil(extract(epoch FROM min(next_at) - now()) * 1000)::bigint"
                " FROM mnemo.outbox WHERE state = 'pending'");
  int64_t ms = -1;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && !PQgetisnull(r, 0, 0)) {
    ms = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    if (ms < 0) ms = 0;
  }
  PQclear(r);
  return ms;
}

/* outbox_round -- one round of the thread (bgthread.h): what is due, then sleep until the
 * next retry is due */
static bgthread_next outbox_round(bgthread *bg, PGconn *c, void *ctx, int *wait_ms)
{
  int64_t ms = round_once(ctx, bg, c);
  if (ms == -2) return BGTHREAD_LOST;
  if (ms >= 0 && ms < *wait_ms) *wait_ms = (int)ms;
  return BGTHREAD_IDLE;
}

static void outbox_free(outbox *o)
{
  curl_easy_cleanup(o->h);
  free(o->url);
  free(o);
}

mn_status outbox_create(const mn_config *cfg, outbox **out, mn_error *err)
{
  *out = NULL;
  if (!cfg->webhooks.url || !*cfg->webhooks.url) return MN_OK;
  outbox *o = calloc(1, sizeof *o);
  if (!o) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  mn_status rc =
      mn_webhook_key_parse(cfg->webhooks.secret ? cfg->webhooks.secret : "", &o->key, err);
  if (rc != MN_OK) {
    free(o);
    return mn_error_prefix(err, "webhooks.secret");
  }
  o->url = strdup(cfg->webhooks.url);
  o->h = curl_easy_init();
  o->timeout_s = cfg->webhooks.timeout_s;
  o->max_attempts = cfg->webhooks.max_attempts;
  if (!o->url || !o->h) {
    outbox_free(o);
    return mn_error_set(err, MN_ERR_NOMEM, "could not start the webhook thread");
  }
  bgthread_spec spec = {.name = "webhooks",
                        .conninfo = cfg->database.conninfo,
                        .connect_timeout_s = cfg->database.connect_timeout_s,
                        .fail_backoff_max_ms = 30000,
                        .round = outbox_round,
                        .ctx = o};
  rc = bgthread_create(&spec, &o->bg, err);
  if (rc != MN_OK) {
    outbox_free(o);
    return rc;
  }
  *out = o;
  return MN_OK;
}

void outbox_wake(outbox *o)
{
  if (o) bgthread_wake(o->bg);
}

void outbox_destroy(outbox *o)
{
  if (!o) return;
  bgthread_destroy(o->bg); /* first: the thread uses o */
  outbox_free(o);
}
