/*
 * cmd_fisher.c -- `mnemo fisher`: the diagonal Fisher of a checkpoint's weights per language
 * (trainer/ewc.c), for EWC; optionally the online estimate with an earlier one.
 */
#include "worker/worker_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const worker_opt worker__fisher_opts[] = {
    WORKER_TEXT("checkpoint", checkpoint, "CKPT", "the weights the Fisher is estimated at"),
    WORKER_TEXT("out", out, "FILE", "the Fisher to write (atomically)"),
    WORKER_COUNT("windows", windows, "N", "windows per language (default: 32)"),
    WORKER_TEXT("weighting", weighting, "equal|share",
                "languages weighted equally or by their share of the windows (default: equal)"),
    WORKER_TEXT("previous", previous, "FILE", "an earlier Fisher: gamma * it + this one"),
    WORKER_REAL("gamma", gamma, "G", 0, 1, "the earlier Fisher's weight (default: 0.9)"),
    WORKER_OPT_END,
};

/*
 * fisher -- the diagonal Fisher of a checkpoint's weights for EWC, from windows of
 * train.seq_len + 1 tokens per language; --previous F_OLD makes it the online estimate
 * gamma * F_OLD + F_new.
 */
int worker__cmd_fisher(worker_ctx *w, worker_args *o)
{
  if (!o->checkpoint || !o->out || o->npos < 1)
    return worker__usage("fisher needs --checkpoint FILE, --out FILE and at least one shard");
  const char *weighting = o->weighting ? o->weighting : "equal";
  if (strcmp(weighting, "equal") != 0 && strcmp(weighting, "share") != 0)
    return worker__usage("--weighting must be equal or share, got \"%s\"", weighting);
  if (o->gamma > 0 && !o->previous) return worker__usage("--gamma goes with --previous");
  mn_error err = {0};
  shard *shards = NULL;
  gpt *m = NULL;
  float *F = NULL, *old = NULL;
  int code = MN_EXIT_FAIL;
  ckpt_meta meta;
  fisher_meta fm, pm;
  memset(&fm, 0, sizeof fm);
  int T = 0;
  if (worker__scoring_model(w, o->checkpoint, &meta, &m, &T, &err) != MN_OK) goto out;
  if (shard_read_many((const char *const *)o->pos, o->npos, &shards, &err) != MN_OK) goto out;
  for (int s = 0; s < o->npos; s++)
    if (shard_fits(&shards[s], o->pos[s], &meta, o->checkpoint, &err) != MN_OK) goto out;
  size_t np = gpt_params_count(m);
  F = malloc(np * sizeof(float));
  if (!F) {
    mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
    goto out;
  }
  int windows = o->windows ? (int)o->windows : 32;
  if (fisher_estimate(m, shards, o->npos, T, windows, weighting[0] == 's', F, fm.info,
                      sizeof fm.info, &err) != MN_OK)
    goto out;
  if (o->previous) { /* online: gamma * the previous estimate + this one */
    double gamma = o->gamma > 0 ? o->gamma : 0.9;
    old = malloc(np * sizeof(float));
    if (!old) {
      mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
      goto out;
    }
    if (ckpt_load_fisher(o->previous, old, np, &pm, &err) != MN_OK) goto out;
    for (size_t i = 0; i < np; i++)
      F[i] = (float)gamma * old[i] + F[i];
    json_t *info = json_loads(fm.info, 0, NULL);
    json_object_set_new(info, "gamma", json_real(gamma));
    json_object_set_new(info, "previous", json_string(pm.weights_sha256));
    char *text = info ? json_dumps(info, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(info);
    if (!text || strlen(text) >= sizeof fm.info) {
      free(text);
      mn_error_set(&err, MN_ERR_NOMEM, "could not describe the online Fisher");
      goto out;
    }
    memcpy(fm.info, text, strlen(text) + 1);
    free(text);
  }
  snprintf(fm.weights_sha256, sizeof fm.weights_sha256, "%s", meta.sha256);
  if (ckpt_save_fisher(o->out, F, np, &fm, &err) != MN_OK) goto out;
  double sum = 0, max = 0;
  for (size_t i = 0; i < np; i++)
    sum += F[i], max = F[i] > max ? F[i] : max;
  json_t *ev = json_pack("{s:s, s:s, s:s, s:f, s:f}", "event", "fisher", "out", o->out, "weighting",
                         weighting, "mean", sum / (double)np, "max", max);
  json_object_set_new(ev, "info", json_loads(fm.info, 0, NULL));
  worker__emit(ev);
  code = MN_EXIT_OK;
out:
  if (code != MN_EXIT_OK) code = worker__fail(&err);
  free(F), free(old);
  shard_destroy_many(shards, o->npos);
  gpt_destroy(m);
  return code;
}
