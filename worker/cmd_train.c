/*
 * cmd_train.c -- `mnemo pretrain` and `mnemo finetune`: the config's train.* and finetune.*
 * keys mapped onto the training loop of trainer/train.h, SIGTERM and SIGINT turned into its
 * stop flag (exit 75 with a resumable checkpoint), and its events written as JSON lines on
 * stdout (or a progress line on a terminal).
 */
#include "trainer/train.h"
#include "worker/worker_int.h"

#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* pretrain and finetune take the same options (finetune also --spec, from its row) */
const worker_opt worker__train_opts[] = {
    WORKER_TEXT("out", out, "DIR", "where checkpoints go (DIR/model.safetensors names the last)"),
    WORKER_TEXT("resume", resume, "CKPT",
                "continue this checkpoint (and its .opt) bit-identically"),
    WORKER_COUNT("steps", steps, "N", "stop after step N of train.steps"),
    WORKER_TEXT("tokenizer", tokenizer, "FILE",
                "pretrain: the tokenizer of the shards (a tokenizer.json or a checkpoint; "
                "default bytes); a fine-tune keeps its baseline's"),
    WORKER_OPT_END,
};

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig)
{
  (void)sig;
  stop_requested = 1;
}

mn_status worker__train_backend(const mn_config *c, const kernels_backend **k, mn_error *err)
{
  return train_backend(c->train.device == 1, (kernels_math)c->train.math, k, err);
}

/* dp_world -- this process's rank and the world size of a data-parallel run, from the
 * launcher's environment (MNEMO_RANK/MNEMO_WORLD_SIZE, RANK/WORLD_SIZE as torchrun sets
 * them, Slurm's SLURM_PROCID/SLURM_NTASKS, Open MPI's); 0 of 1 without one, or when the
 * first pair set is not two numbers */
static void dp_world(int *rank, int *world)
{
  static const char *const vars[][2] = {{"MNEMO_RANK", "MNEMO_WORLD_SIZE"},
                                        {"RANK", "WORLD_SIZE"},
                                        {"SLURM_PROCID", "SLURM_NTASKS"},
                                        {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"}};
  *rank = 0, *world = 1;
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
    const char *r = getenv(vars[i][0]), *n = getenv(vars[i][1]);
    int64_t rv, nv;
    if (r && n && *r && *n) {
      if (mn_parse_i64(r, &rv) && mn_parse_i64(n, &nv) && rv >= 0 && nv >= 1 && rv < nv &&
          nv <= 65536)
        *rank = (int)rv, *world = (int)nv;
      return;
    }
  }
}

/* the progress of a run: JSON lines on stdout, or one line on a terminal (stderr) */
typedef struct progress {
  bool tty;
  mn_progress line; /* the terminal's */
} progress;

static json_t *rounded(double v)
{
  return json_real(round(v * 1e4) / 1e4);
}

static void on_event(const train_event *ev, void *ctx)
{
  progress *p = ctx;
  switch (ev->kind) {
  case TRAIN_EVENT_START: {
    json_t *shares = json_object();
    for (int i = 0; i < ev->nlangs; i++)
      json_object_set_new(shares, ev->codes[i], rounded(ev->shares[i]));
    worker__emit(json_pack("{s:s, s:I, s:I, s:i, s:i, s:I, s:o, s:i}", "event", "start", "params",
                           (json_int_t)ev->params, "from_step", (json_int_t)ev->step, "batch",
                           ev->batch, "seq_len", ev->seq_len, "steps", (json_int_t)ev->steps,
                           "language_shares", shares, "threads", ev->threads));
    break;
  }
  case TRAIN_EVENT_STEP: {
    if (p->tty) {
      int w = -1; /* the language drifting most, when the controller watches */
      for (int i = 0; i < ev->nadapt; i++)
        if (ev->adapt_seen[i] && (w < 0 || ev->adapt_drift[i] > ev->adapt_drift[w])) w = i;
      char drift[96] = "";
      if (w >= 0)
        snprintf(drift, sizeof drift, "  drift %s %+.2f%% (replay x%.2f)", ev->adapt_codes[w],
                 100 * ev->adapt_drift[w], ev->adapt_boost[w]);
      mn_progress_update(&p->line, (double)ev->step, (double)ev->steps,
                         "step %lld/%lld  loss %.4f  lr %.2e  %.0f tok/s%s", (long long)ev->step,
                         (long long)ev->steps, ev->loss, ev->lr, ev->tokens_per_s, drift);
      break;
    }
    json_t *per = json_object();
    for (int i = 0; i < ev->ntags; i++)
      if (!isnan(ev->tag_loss[i]))
        json_object_set_new(per, ev->tag_codes[i], rounded(ev->tag_loss[i]));
    json_t *o = json_pack("{s:s, s:I, s:f, s:f, s:f, s:f, s:f, s:o}", "event", "step", "step",
                          (json_int_t)ev->step, "loss", (double)ev->loss, "lr", (double)ev->lr,
                          "grad_norm", (double)ev->grad_norm, "tokens_per_s",
                          round(ev->tokens_per_s), "step_ms", ev->step_ms, "languages", per);
    if (ev->finetune) {
      json_object_set_new(o, "trainable_from", json_integer(ev->trainable_from));
      json_object_set_new(o, "replayed", json_integer(ev->replayed));
      if (ev->has_ewc_penalty) json_object_set_new(o, "ewc_penalty", json_real(ev->ewc_penalty));
      if (ev->nadapt) { /* the drift controller: each replayed language seen so far */
        json_t *drift = json_object(), *factor = json_object();
        for (int i = 0; i < ev->nadapt; i++) {
          if (!ev->adapt_seen[i]) continue;
          json_object_set_new(drift, ev->adapt_codes[i],
                              json_real(round(ev->adapt_drift[i] * 1e6) / 1e6));
          json_object_set_new(factor, ev->adapt_codes[i],
                              json_real(round(ev->adapt_boost[i] * 1e3) / 1e3));
        }
        json_object_set_new(o, "drift", drift);
        json_object_set_new(o, "replay_factor", factor);
      }
    }
    worker__emit(o);
    break;
  }
  case TRAIN_EVENT_CHECKPOINT:
    worker__emit(json_pack("{s:s, s:I, s:s}", "event", "checkpoint", "step", (json_int_t)ev->step,
                           "dir", ev->dir));
    break;
  case TRAIN_EVENT_DONE:
    mn_progress_end(&p->line);
    worker__emit(json_pack("{s:s, s:I, s:s, s:s, s:f}", "event", "done", "step",
                           (json_int_t)ev->step, "checkpoint", ev->dir, "sha256", ev->sha256,
                           "seconds", ev->seconds));
    break;
  case TRAIN_EVENT_INTERRUPTED:
    mn_progress_end(&p->line);
    worker__emit(json_pack("{s:s, s:I, s:s}", "event", "interrupted", "step", (json_int_t)ev->step,
                           "resume", ev->dir));
    break;
  }
}

static int train(worker_ctx *w, worker_args *o, bool finetune)
{
  mn_error err = {0};
  const char *cmd = finetune ? "finetune" : "pretrain";
  if (!o->out || o->npos < 1)
    return worker__usage("%s needs --out DIR and at least one shard", cmd);
  const mn_config *c = &w->cfg;
  if (finetune && o->tokenizer)
    return worker__usage("finetune keeps its baseline's tokenizer: --tokenizer is for pretrain");
  if (finetune && !(c->finetune.baseline && *c->finetune.baseline))
    return worker__usage(
        "finetune needs finetune.baseline (the checkpoint to start from) in --spec");
  gpt_config gc = worker__model_config(c);
  if (!finetune && c->train.seq_len > gc.max_seq_len) /* a fine-tune's baseline decides */
    return worker__usage("train.seq_len %d exceeds model.max_seq_len %d", (int)c->train.seq_len,
                         gc.max_seq_len);
  signal(SIGTERM, on_signal); /* from the start: an early SIGTERM still exits 75 */
  signal(SIGINT, on_signal);
  kernels_cpu_set_threads((int)c->train.threads);
  finetune_options fo = {.baseline = c->finetune.baseline,
                         .fisher = c->finetune.fisher,
                         .ewc_lambda = c->finetune.ewc_lambda,
                         .replay_store = c->finetune.replay_store,
                         .replay_ratio = c->finetune.replay_ratio,
                         .replay_sampler = c->finetune.replay_sampler,
                         .unimax_epochs = c->finetune.unimax_epochs,
                         .replay_boosts = c->finetune.replay_boosts,
                         .adapt_max_boost = c->finetune.adapt_max_boost,
                         .report_boosts = c->finetune.report_boosts,
                         .guard_boosts = c->finetune.guard_boosts,
                         .distill = c->finetune.distill,
                         .stages = c->finetune.stages,
                         .lr_factor = c->finetune.lr_factor};
  int rank, world;
  dp_world(&rank, &world);
  worker__silent = world > 1 && rank > 0; /* one run, one voice */
  progress p = {.tty = isatty(STDERR_FILENO) && !w->json};
  mn_progress_init(&p.line, worker__progress_out(w));
  train_options t = {.out = o->out,
                     .tokenizer = o->tokenizer,
                     .resume = o->resume,
                     .shards = (const char *const *)o->pos,
                     .nshards = o->npos,
                     .model = gc,
                     .batch = (int)c->train.batch_size,
                     .seq_len = (int)c->train.seq_len,
                     .steps = c->train.steps,
                     .stop_after = o->steps,
                     .seed = (uint64_t)c->train.seed,
                     .lr = c->train.lr,
                     .min_lr_frac = c->train.min_lr_frac,
                     .weight_decay = c->train.weight_decay,
                     .grad_clip = c->train.grad_clip,
                     .beta1 = c->train.beta1,
                     .beta2 = c->train.beta2,
                     .language_alpha = c->train.language_alpha,
                     .warmup_steps = c->train.warmup_steps,
                     .checkpoint_every = c->train.checkpoint_every,
                     .cuda = c->train.device == 1,
                     .math = (kernels_math)c->train.math,
                     .dp_id_file = getenv("MNEMO_DP_ID_FILE"),
                     .finetune = finetune ? &fo : NULL,
                     .per_language = !p.tty,
                     .on_event = on_event,
                     .ctx = &p,
                     .stop = &stop_requested,
                     .rank = rank,
                     .world = world};
  train_result res;
  if (train_run(&t, &res, &err) != MN_OK) return worker__fail(&err);
  return res.interrupted ? MN_EXIT_INTERRUPTED : MN_EXIT_OK;
}

int worker__cmd_pretrain(worker_ctx *w, worker_args *o)
{
  return train(w, o, false);
}

int worker__cmd_finetune(worker_ctx *w, worker_args *o)
{
  return train(w, o, true);
}
