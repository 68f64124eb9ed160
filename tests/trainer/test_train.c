/*
 * test_train.c -- the training loop as a library (trainer/train.h): a tiny model trained a
 * few dozen steps on a generated shard lowers its loss; every event arrives through the
 * callback with its fields; the stop flag set from the callback ends the run at that step's
 * end with the checkpoint of that step saved, and a resume continues from it to the same
 * weights as a run never stopped; a fine-tune follows its unfreezing stages; stage strings
 * parse, and bad ones are refused with messages that say what is wrong.
 */
#include "tests/test.h"
#include "trainer/train.h"

#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64], shard_path[128];

/* a shard of two languages, each a few hundred bytes of a repeated sentence */
static void make_shard(void)
{
  tok_tags tags = {0};
  shard_builder *b = NULL;
  tokenizer *tok = NULL;
  mn_error err = {0};
  T_EQ_INT(tok_create_bytes(&tok, &err), MN_OK);
  T_EQ_INT(tok_tags_add(&tags, "spa", 257, &err), MN_OK);
  T_EQ_INT(tok_tags_add(&tags, "eng", 258, &err), MN_OK);
  T_EQ_INT(shard_builder_create(tok, &tags, &b, &err), MN_OK);
  for (int i = 0; i < 12; i++) {
    char text[256];
    int n = snprintf(text, sizeof text, "el gato come pescado numero %d y duerme en la casa. ", i);
    T_EQ_INT(shard_builder_add(b, "spa", text, (size_t)n, &err), MN_OK);
    n = snprintf(text, sizeof text, "the dog eats bread number %d and sleeps in the house. ", i);
    T_EQ_INT(shard_builder_add(b, "eng", text, (size_t)n, &err), MN_OK);
  }
  snprintf(shard_path, sizeof shard_path, "%s/data.shard", dir);
  T_EQ_INT(shard_builder_write(b, shard_path, &err), MN_OK);
  shard_builder_destroy(b);
  tok_destroy(tok);
}

/* what the callback saw */
typedef struct seen {
  int start, steps, checkpoints, done, interrupted;
  int64_t start_step, last_step, stop_at, checkpoint_step;
  float first_loss, last_loss;
  double shares;
  int nlangs, langs_with_loss, trainable[64];
  bool steps_in_order, has_penalty;
  char sha256[MN_SHA256_HEX_LEN + 1];
  volatile sig_atomic_t stop;
} seen;

static void on_event(const train_event *ev, void *ctx)
{
  seen *s = ctx;
  switch (ev->kind) {
  case TRAIN_EVENT_START:
    s->start++;
    s->start_step = ev->step;
    s->last_step = ev->step;
    s->nlangs = ev->nlangs;
    for (int i = 0; i < ev->nlangs; i++)
      s->shares += ev->shares[i];
    T_CHECK(ev->params > 0 && ev->batch == 4 && ev->seq_len == 16 && ev->threads >= 1);
    break;
  case TRAIN_EVENT_STEP:
    if (s->steps == 0) s->first_loss = ev->loss;
    s->last_loss = ev->loss;
    s->steps_in_order = (s->steps == 0 || s->steps_in_order) && ev->step == s->last_step + 1;
    s->last_step = ev->step;
    if (ev->step < 64) s->trainable[ev->step] = ev->trainable_from;
    s->langs_with_loss = 0;
    for (int i = 0; i < ev->ntags; i++)
      s->langs_with_loss += !isnan(ev->tag_loss[i]);
    T_CHECK(isfinite(ev->loss) && ev->lr > 0 && ev->grad_norm >= 0 && ev->step_ms >= 0);
    s->has_penalty |= ev->has_ewc_penalty;
    s->steps++;
    if (s->stop_at && ev->step == s->stop_at) s->stop = 1; /* as a signal handler would */
    break;
  case TRAIN_EVENT_CHECKPOINT:
    s->checkpoints++;
    s->checkpoint_step = ev->step;
    T_CHECK(ev->dir && strncmp(ev->dir, dir, strlen(dir)) == 0);
    break;
  case TRAIN_EVENT_DONE:
    s->done++;
    snprintf(s->sha256, sizeof s->sha256, "%s", ev->sha256);
    T_CHECK(ev->seconds >= 0);
    break;
  case TRAIN_EVENT_INTERRUPTED: s->interrupted++; break;
  }
}

static train_options options(const char *out, seen *s, int64_t steps)
{
  static const char *shards[1];
  shards[0] = shard_path;
  return (train_options){.out = out,
                         .shards = shards,
                         .nshards = 1,
                         .model = {.max_seq_len = 16,
                                   .vocab_size = 272,
                                   .padded_vocab = 272,
                                   .n_layer = 2,
                                   .n_head = 2,
                                   .n_embd = 16},
                         .batch = 4,
                         .seq_len = 16,
                         .steps = steps,
                         .seed = 7,
                         .lr = 1e-2,
                         .min_lr_frac = 0.1,
                         .weight_decay = 0.0,
                         .grad_clip = 1.0,
                         .beta1 = 0.9,
                         .beta2 = 0.95,
                         .language_alpha = 0.3,
                         .warmup_steps = 2,
                         .per_language = true,
                         .on_event = on_event,
                         .ctx = s,
                         .stop = &s->stop};
}

static void learns_and_reports(void)
{
  seen s = {0};
  train_options o = options(dir, &s, 40);
  train_result res;
  mn_error err = {0};
  T_EQ_INT(train_run(&o, &res, &err), MN_OK);
  T_CHECK_MSG(err.msg[0] == 0, "%s", err.msg);
  T_EQ_INT(s.start, 1);
  T_EQ_INT(s.start_step, 0);
  T_EQ_INT(s.nlangs, 2);
  T_CHECK(fabs(s.shares - 1.0) < 1e-9);
  T_EQ_INT(s.steps, 40);
  T_CHECK(s.steps_in_order);
  T_EQ_INT(s.langs_with_loss, 2); /* both languages had rows in the last batch */
  T_CHECK_MSG(s.last_loss < s.first_loss - 1.0, "loss %f -> %f", s.first_loss, s.last_loss);
  T_EQ_INT(s.checkpoints, 0); /* checkpoint_every 0: only the final save, no event */
  T_EQ_INT(s.done, 1);
  T_EQ_INT(s.interrupted, 0);
  T_CHECK(!res.interrupted && res.step == 40);
  T_EQ_INT((int)strlen(s.sha256), MN_SHA256_HEX_LEN);
  T_EQ_STR(res.sha256, s.sha256);
  char path[128];
  ckpt_meta meta;
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  T_EQ_INT(ckpt_read_meta(path, &meta, &err), MN_OK);
  T_EQ_INT(meta.step, 40);
  T_EQ_STR(meta.sha256, s.sha256);
}

static void stop_flag_and_resume(void)
{
  char out[96], path[128];
  snprintf(out, sizeof out, "%s/stopped", dir);
  seen s = {.stop_at = 3};
  train_options o = options(out, &s, 6);
  o.checkpoint_every = 0;
  train_result res;
  mn_error err = {0};
  T_EQ_INT(train_run(&o, &res, &err), MN_OK);
  T_CHECK(res.interrupted);
  T_EQ_INT(res.step, 3);
  T_EQ_INT(s.last_step, 3); /* no step after the one that saw the flag */
  T_EQ_INT(s.checkpoints, 1);
  T_EQ_INT(s.checkpoint_step, 3);
  T_EQ_INT(s.interrupted, 1);
  T_EQ_INT(s.done, 0);
  ckpt_meta meta;
  snprintf(path, sizeof path, "%s/model.safetensors", out);
  T_EQ_INT(ckpt_read_meta(path, &meta, &err), MN_OK);
  T_EQ_INT(meta.step, 3);
  snprintf(path, sizeof path, "%s/step-00000003.safetensors.opt", out);
  T_CHECK(access(path, F_OK) == 0);

  /* resumed, it ends where a run never stopped ends */
  seen r = {0};
  snprintf(path, sizeof path, "%s/model.safetensors", out);
  o = options(out, &r, 6);
  o.resume = path;
  T_EQ_INT(train_run(&o, &res, &err), MN_OK);
  T_CHECK_MSG(err.msg[0] == 0, "%s", err.msg);
  T_EQ_INT(r.start_step, 3);
  T_EQ_INT(r.steps, 3);
  T_CHECK(!res.interrupted && res.step == 6);
  char whole[96];
  snprintf(whole, sizeof whole, "%s/whole", dir);
  seen w = {0};
  train_result wres;
  o = options(whole, &w, 6);
  T_EQ_INT(train_run(&o, &wres, &err), MN_OK);
  T_EQ_STR(res.sha256, wres.sha256);

  /* a resume with another setup is another run: refused, naming what changed */
  seen x = {0};
  o = options(out, &x, 6);
  o.resume = path;
  o.lr = 0.5;
  T_EQ_INT(train_run(&o, &res, &err), MN_ERR_INPUT);
  T_CONTAINS(err.msg, "its lr was");
}

static void finetune_follows_stages(void)
{
  char base[128], out[96];
  snprintf(base, sizeof base, "%s/model.safetensors", dir); /* learns_and_reports' */
  snprintf(out, sizeof out, "%s/ft", dir);
  finetune_options fo = {.baseline = base, .stages = "1:2,all", .lr_factor = 2.0};
  seen s = {0};
  train_options o = options(out, &s, 5);
  o.finetune = &fo;
  train_result res;
  mn_error err = {0};
  T_EQ_INT(train_run(&o, &res, &err), MN_OK);
  T_CHECK_MSG(err.msg[0] == 0, "%s", err.msg);
  T_EQ_INT(s.steps, 5);
  for (int t = 1; t <= 5; t++)
    T_EQ_INT(s.trainable[t], t <= 2 ? 1 : -1);
  T_CHECK(!s.has_penalty); /* no Fisher: no EWC */
  fo.stages = "3:2,all";   /* a tiny model has 2 blocks */
  T_EQ_INT(train_run(&o, &res, &err), MN_ERR_CONFIG);
  T_CONTAINS(err.msg, "\"3\" is not a number of top blocks (1 .. 2)");
}

static void stages_parse(void)
{
  finetune_stages st;
  mn_error err = {0};
  T_EQ_INT(finetune_stages_parse("1:4,all", 6, &st, &err), MN_OK);
  T_EQ_INT(st.n, 2);
  T_EQ_INT(st.first_block[0], 5);
  T_EQ_INT(st.first_block[1], -1);
  T_EQ_INT(st.end[0], 4);
  T_CHECK(st.end[1] == INT64_MAX);
  T_EQ_INT(finetune_stages_first_block(&st, 4), 5);
  T_EQ_INT(finetune_stages_first_block(&st, 5), -1);
  T_EQ_INT(finetune_stages_parse("2:3,4:2,6", 6, &st, &err), MN_OK);
  T_EQ_INT(st.n, 3);
  T_EQ_INT(st.end[0], 3);
  T_EQ_INT(st.end[1], 5);
  T_EQ_INT(st.first_block[2], 0);
  T_EQ_INT(finetune_stages_first_block(&st, 4), 2);
  T_EQ_INT(finetune_stages_parse("all", 6, &st, &err), MN_OK);
  T_EQ_INT(st.n, 1);
  static const struct {
    const char *text, *says;
  } bad[] = {
      {"0:3,all", "\"0\" is not a number of top blocks (1 .. 6) or all"},
      {"7:3,all", "\"7\" is not a number of top blocks"},
      {"x:3", "\"x\" is not a number of top blocks"},
      {"1:0,all", "\"0\" is not a number of steps"},
      {"1:ten,all", "\"ten\" is not a number of steps"},
      {"all,1:3", "a stage without a number of steps must be the last"},
      {"", "finetune.stages is empty"},
      {",,", "finetune.stages is empty"},
      {"1:1,1:1,1:1,1:1,1:1,1:1,1:1,1:1,1:1,1:1,1:1,1:1,1:1,1:1,1:1,1:1,all", "at most 16 stages"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memset(&err, 0, sizeof err);
    T_EQ_INT(finetune_stages_parse(bad[i].text, 6, &st, &err), MN_ERR_CONFIG);
    T_CONTAINS(err.msg, bad[i].says);
  }
  char lng[300];
  memset(lng, '1', sizeof lng - 1), lng[sizeof lng - 1] = 0;
  T_EQ_INT(finetune_stages_parse(lng, 6, &st, &err), MN_ERR_CONFIG);
  T_CONTAINS(err.msg, "longer than 255 bytes");
}

static void refuses_bad_input(void)
{
  seen s = {0};
  train_options o = options(dir, &s, 5);
  train_result res;
  mn_error err = {0};
  o.nshards = 0;
  T_EQ_INT(train_run(&o, &res, &err), MN_ERR_USAGE);
  char missing[128];
  snprintf(missing, sizeof missing, "%s/none.shard", dir);
  const char *one[] = {missing};
  o = options(dir, &s, 5);
  o.shards = one;
  T_CHECK(train_run(&o, &res, &err) != MN_OK);
  T_CONTAINS(err.msg, "none.shard");
  T_EQ_INT(s.start, 0); /* nothing started */
}

/* the loader starts half its windows at a document's start: its first target is the
 * document's first token (here the only X in the text), and the other half anywhere */
static void loader_starts_documents(void)
{
  tok_tags tags = {0};
  tokenizer *tok = NULL;
  shard_builder *b = NULL;
  mn_error err = {0};
  char path[160], text[301];
  snprintf(path, sizeof path, "%s/docs.shard", dir);
  T_EQ_INT(tok_create_bytes(&tok, &err), MN_OK);
  T_EQ_INT(tok_tags_add(&tags, "spa", 257, &err), MN_OK);
  T_EQ_INT(shard_builder_create(tok, &tags, &b, &err), MN_OK);
  memset(text, 'a', 300);
  text[0] = 'X';
  for (int i = 0; i < 40; i++)
    T_EQ_INT(shard_builder_add(b, "spa", text, 300, &err), MN_OK);
  T_EQ_INT(shard_builder_write(b, path, &err), MN_OK);
  shard_builder_destroy(b);
  tok_destroy(tok);
  shard s;
  loader *l = NULL;
  T_EQ_INT(shard_read(path, &s, &err), MN_OK);
  T_EQ_INT(loader_create(&s, 1, 16, 0.3, 7, &l, &err), MN_OK);
  int32_t x[16], y[16];
  int starts = 0, n = 4000;
  for (int i = 0; i < n; i++) {
    loader_next(l, 1, x, y);
    T_EQ_INT(x[0], 257);
    starts += y[0] == 'X';
  }
  /* half by design, and about 1 in 300 of the other half by chance */
  T_CHECK_MSG(starts > n * 45 / 100 && starts < n * 55 / 100, "%d of %d windows at a start", starts,
              n);
  loader_destroy(l);
  shard_fini(&s);
}

int main(void)
{
  snprintf(dir, sizeof dir, "/tmp/mnemo-test-train-XXXXXX");
  if (!mkdtemp(dir)) return 1;
  kernels_cpu_set_threads(1);
  T_RUN(make_shard);
  T_RUN(loader_starts_documents);
  T_RUN(stages_parse);
  T_RUN(learns_and_reports);
  T_RUN(stop_flag_and_resume);
  T_RUN(finetune_follows_stages);
  T_RUN(refuses_bad_input);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (!getenv("KEEP") && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return T_DONE();
}
