/*
 * mnemo.c -- the compute worker: files in, files out, no database.
 *
 *   mnemo [--config FILE] [--set KEY=VALUE]... COMMAND [ARGS]
 *     shard     JSONL {"lang", "text"} -> a token shard (train or held-out split)
 *     pretrain  shards -> checkpoint (resumable; SIGTERM saves and exits 75)
 *     eval      checkpoint + shards -> bits per byte per language (--per-doc: NLL per document)
 *     generate  checkpoint + language + prompt -> text
 *     bench     tokens/s and GFLOP/s of a training step for the configured model
 *     replay    absorb shards' windows into the replay store; verify a store
 *     fisher    checkpoint + shards -> its diagonal Fisher per language (EWC)
 *     finetune  baseline + fresh shards + replay + Fisher -> candidate (resumable)
 *     evalset   held-out documents, parallel items, probes -> a checksummed evaluation set
 *     guard     baseline + candidate + evaluation sets -> the verdict (exit 3: a guard said no)
 *
 * Progress is JSON lines on stdout (one object per event), or a progress line on
 * stderr when stderr is a terminal.  Exit codes: 0 done, 1 failure, 2 usage, 3 a guard
 * said no, 75 interrupted with a resumable checkpoint saved.
 */
#define _XOPEN_SOURCE 700 /* realpath */
#include "configs/config.h"
#include "guards/verdict.h"
#include "replay/replay.h"
#include "trainer/trainer_int.h"
#include "trainer/worker_int.h"
#include "triage/lid.h"
#include "triage/triage.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

int worker__fail(const mn_error *err)
{
  fprintf(stderr, "mnemo: %s\n", err->msg);
  if (err->detail[0]) fprintf(stderr, "  detail: %s\n", err->detail);
  return err->code == MN_ERR_USAGE ? EXIT_USAGE : EXIT_FAIL;
}

int worker__usage(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "mnemo: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\nTry \"mnemo --help\".\n");
  va_end(ap);
  return EXIT_USAGE;
}

/* ranks of a data-parallel run other than 0 say nothing: one run, one voice */
bool worker__silent;

/* worker__emit -- one JSON line on stdout (flushed: a supervisor reads it as it comes). */
void worker__emit(json_t *o)
{
  if (worker__silent) {
    json_decref(o);
    return;
  }
  char *s = json_dumps(o, JSON_COMPACT);
  if (s) {
    fputs(s, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    free(s);
  }
  json_decref(o);
}

gpt_config worker__model_config(const mn_config *c)
{
  return (gpt_config){.max_seq_len = (int)c->model.max_seq_len,
                      .vocab_size = (int)c->model.vocab,
                      .padded_vocab = (int)c->model.vocab,
                      .n_layer = (int)c->model.n_layer,
                      .n_head = (int)c->model.n_head,
                      .n_embd = (int)c->model.n_embd};
}

static int parse(int argc, char **argv, opts *o)
{
  o->pos = argv;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char **s = NULL;
    int64_t *n = NULL;
    if (strcmp(a, "--out") == 0)
      s = &o->out;
    else if (strcmp(a, "--resume") == 0)
      s = &o->resume;
    else if (strcmp(a, "--checkpoint") == 0)
      s = &o->checkpoint;
    else if (strcmp(a, "--lang") == 0)
      s = &o->lang;
    else if (strcmp(a, "--prompt") == 0)
      s = &o->prompt;
    else if (strcmp(a, "--split") == 0)
      s = &o->split;
    else if (strcmp(a, "--tags") == 0)
      s = &o->tags;
    else if (strcmp(a, "--store") == 0)
      s = &o->store;
    else if (strcmp(a, "--capacity") == 0)
      n = &o->capacity;
    else if (strcmp(a, "--windows") == 0)
      n = &o->windows;
    else if (strcmp(a, "--previous") == 0)
      s = &o->previous;
    else if (strcmp(a, "--weighting") == 0)
      s = &o->weighting;
    else if (strcmp(a, "--spec") == 0)
      s = &o->spec;
    else if (strcmp(a, "--parallel") == 0)
      s = &o->parallel;
    else if (strcmp(a, "--reference") == 0)
      s = &o->reference;
    else if (strcmp(a, "--probes") == 0)
      s = &o->probes;
    else if (strcmp(a, "--sets") == 0)
      s = &o->sets;
    else if (strcmp(a, "--cache") == 0)
      s = &o->cache;
    else if (strcmp(a, "--baseline") == 0)
      s = &o->baseline;
    else if (strcmp(a, "--candidate") == 0)
      s = &o->candidate;
    else if (strcmp(a, "--must-improve") == 0)
      s = &o->must_improve;
    else if (strcmp(a, "--history") == 0)
      s = &o->history;
    else if (strcmp(a, "--max-items") == 0)
      n = &o->max_items;
    else if (strcmp(a, "--max-item-bytes") == 0)
      n = &o->max_item_bytes;
    else if (strcmp(a, "--max-bytes") == 0)
      n = &o->max_bytes;
    else if (strcmp(a, "--model") == 0)
      s = &o->model;
    else if (strcmp(a, "--typical") == 0)
      s = &o->typical;
    else if (strcmp(a, "--heldout") == 0)
      s = &o->heldout;
    else if (strcmp(a, "--device") == 0)
      s = &o->device;
    else if (strcmp(a, "--math") == 0)
      s = &o->math;
    else if (strcmp(a, "--tokens") == 0)
      n = &o->tokens;
    else if (strcmp(a, "--max-tokens") == 0)
      n = &o->max_tokens;
    else if (strcmp(a, "--top-k") == 0)
      n = &o->top_k;
    else if (strcmp(a, "--steps") == 0)
      n = &o->steps;
    else if (strcmp(a, "--seed") == 0)
      n = &o->seed;
    else if (strcmp(a, "--per-doc") == 0) {
      o->per_doc = true;
      continue;
    } else if (strcmp(a, "--stages") == 0) {
      o->stages = true;
      continue;
    } else if (strcmp(a, "--ewc") == 0) {
      o->ewc = true;
      continue;
    } else if (strcmp(a, "--json") == 0) {
      o->json = true;
      continue;

    } else if (strcmp(a, "--temperature") == 0 || strcmp(a, "--gamma") == 0) {
      bool temp = a[2] == 't';
      if (i + 1 >= argc) return worker__usage("%s needs a value", a);
      char *end;
      double v = strtod(argv[++i], &end);
      if (*end || !(v > 0) || (!temp && v > 1))
        return worker__usage("%s wants a number in %s, got \"%s\"", a, temp ? "(0, inf)" : "(0, 1]",
                             argv[i]);
      *(temp ? &o->temperature : &o->gamma) = v;
      continue;
    } else if (a[0] == '-' && a[1] == '-') {
      return worker__usage("unknown option \"%s\"", a);
    } else {
      o->pos[o->npos++] = argv[i];
      continue;
    }
    if (i + 1 >= argc) return worker__usage("%s needs a value", a);
    if (s)
      *s = argv[++i];
    else if (!mn_parse_i64(argv[++i], n) || *n < 0)
      return worker__usage("%s wants a non-negative number, got \"%s\"", a, argv[i]);
  }
  return 0;
}

/* ---------------------------------------------------------------- main */

static void help(FILE *f)
{
  fprintf(f,
          "usage: mnemo [--config FILE] [--set KEY=VALUE]... [--json] COMMAND [ARGS]\n\n"
          "the compute worker of mnemo: files in, files out, no database\n\n"
          "commands:\n"
          "  shard --out FILE [--split train|heldout|all] [--tags TSV] JSONL...\n"
          "                       documents {\"lang\", \"text\", \"split\"?} into a token shard;\n"
          "                       --split by each record's stored \"split\" (train|heldout),\n"
          "                       else by the hash rule at ingest.heldout_fraction\n"
          "  pretrain --out DIR [--resume CKPT] [--steps N] SHARD...\n"
          "                       train a model; DIR/model.safetensors (+ .opt) is resumable;\n"
          "                       --steps N stops after step N of train.steps\n"
          "  eval --checkpoint CKPT [--per-doc] [--max-tokens N] SHARD...\n"
          "                       bits per byte per language (and NLL per document)\n"
          "  eval --checkpoint CKPT --sets SET[,SET] [--per-doc] [--cache DIR]\n"
          "                       bits per byte per language and kind of item (and NLL per\n"
          "                       item), cached per (checkpoint, set version)\n"
          "  evalset --out SET [--tags TSV | --checkpoint CKPT] [--parallel FILE [--reference L]]\n"
          "          [--probes FILE]"
          " [--max-items N] [--max-item-bytes B] [HELDOUT.jsonl...]\n"
          "                       a versioned, checksummed evaluation set: held-out documents\n"
          "                       (each record's stored \"split\"; a record without one by\n"
          "                       the hash rule at ingest.heldout_fraction), parallel items,\n"
          "                       report probes\n"
          "  guard --baseline CKPT --candidate CKPT --sets SET[,SET] [--cache DIR]\n"
          "        [--must-improve L,L] [--history VERDICT,...] [--out VERDICT.json]\n"
          "                       every per-language guard (guards.*): exit 0 pass, 3 fail\n"
          "  lid train --out MODEL [--max-bytes N] TRAIN.jsonl...\n"
          "                       a language identifier from {\"lang\", \"text\"} records\n"
          "  lid --model MODEL [--json] [FILE]\n"
          "                       the language of each line (or JSONL \"text\"), its\n"
          "                       confidence, and the spans of a code-switched text\n"
          "  triage --checkpoint CKPT --model LID --typical FILE [--heldout JSONL] [FILE]\n"
          "                       user reports (JSONL from mnemod): checks, language, groups of\n"
          "                       near-duplicates, severity against typical held-out text\n"
          "  generate --checkpoint CKPT --lang L [--prompt P] [--tokens N]\n"
          "           [--temperature T] [--top-k K] [--seed S]\n"
          "  bench [--steps N] [--stages] [--ewc] [--device cpu|cuda [--math fp32|tf32|bf16]]\n"
          "                       tokens/s and GFLOP/s of a training step; --stages: the\n"
          "                       step time with the top k blocks trainable (unfreezing);\n"
          "                       --ewc: with the EWC penalty fused into the update\n"
          "                       --device cuda: on the GPU, tokens/s and MFU against the\n"
          "                       card's dense bf16 peak (--math: how products compute;\n"
          "                       weights stay fp32)\n"
          "  finetune --spec JOB.yaml --out DIR [--resume CKPT] [--steps N] SHARD...\n"
          "                       refresh finetune.baseline on fresh shards: replayed windows,\n"
          "                       EWC, progressive unfreezing (finetune.* keys); resumable\n"
          "  fisher --checkpoint CKPT --out FILE [--windows N] [--weighting equal|share]\n"
          "         [--previous FILE [--gamma G]] SHARD...\n"
          "                       the diagonal Fisher of the weights, per language, for EWC;\n"
          "                       --previous: gamma (default 0.9) * that + this one\n"
          "  replay absorb --store FILE --capacity N SHARD...\n"
          "                       offer the shards' windows (train.seq_len + 1 tokens) to\n"
          "                       each language's reservoir; the store is replaced atomically\n"
          "  replay verify STORE  check a store whole; windows held and seen per language\n"
          "  export-hf CKPT DIR   config.json + model.safetensors for GPT2LMHeadModel\n"
          "  import-llmc FILE OUT an llm.c fp32 GPT-2 checkpoint into a mnemo checkpoint\n\n"
          "The model and training come from the config (model.*, train.*; presets in\n"
          "configs/models/).  Progress is JSON lines on stdout, or a progress line on a\n"
          "terminal.  Exit status: 0 done, 1 failure, 2 usage, 3 a guard said no,\n"
          "75 interrupted (resumable).\n");
}

int main(int argc, char **argv)
{
  worker w = {0};
  mn_error err = {0};
  const char *config_path = getenv("MNEMO_CONFIG");
  const char *sets[64];
  int nsets = 0, i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      help(stdout);
      return EXIT_OK;
    } else if (strcmp(argv[i], "--json") == 0) {
      w.json = true;
    } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
      config_path = argv[++i];
    } else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc && nsets < 64) {
      sets[nsets++] = argv[++i];
    } else {
      return worker__usage("unknown or incomplete option \"%s\"", argv[i]);
    }
  }
  if (i >= argc) {
    help(stderr);
    return EXIT_USAGE;
  }
  const char *cmd = argv[i];
  opts o = {0};
  if (strcmp(cmd, "--help") == 0) {
    help(stdout);
    return EXIT_OK;
  }
  if (parse(argc - i - 1, argv + i + 1, &o) != 0) return EXIT_USAGE;
  if (o.spec) config_path = o.spec; /* a job spec is a config file: it replaces --config */
  mn_status rc = config_path && *config_path ? mn_config_load_file(config_path, &w.cfg, &err)
                                             : mn_config_init(&w.cfg, &err);
  if (rc != MN_OK) return worker__fail(&err);
  for (int s = 0; s < nsets; s++) {
    char key[128];
    const char *eq = strchr(sets[s], '=');
    if (!eq || (size_t)(eq - sets[s]) >= sizeof key) {
      mn_config_fini(&w.cfg);
      return worker__usage("--set wants KEY=VALUE, got \"%s\"", sets[s]);
    }
    snprintf(key, sizeof key, "%.*s", (int)(eq - sets[s]), sets[s]);
    if (mn_config_set(&w.cfg, key, eq + 1, "--set", &err) != MN_OK) {
      mn_config_fini(&w.cfg);
      return worker__fail(&err);
    }
  }
  mn_config_apply_log(&w.cfg);
  int code;
  if (strcmp(cmd, "shard") == 0) {
    code = worker__cmd_shard(&w, &o);
  } else if (strcmp(cmd, "pretrain") == 0) {
    code = worker__cmd_pretrain(&w, &o);
  } else if (strcmp(cmd, "eval") == 0) {
    code = worker__cmd_eval(&w, &o);
  } else if (strcmp(cmd, "guard") == 0) {
    code = worker__cmd_guard(&w, &o);
  } else if (strcmp(cmd, "evalset") == 0) {
    code = worker__cmd_evalset(&w, &o);
  } else if (strcmp(cmd, "generate") == 0) {
    code = worker__cmd_generate(&w, &o);
  } else if (strcmp(cmd, "bench") == 0) {
    code = worker__cmd_bench(&w, &o);
  } else if (strcmp(cmd, "replay") == 0) {
    code = worker__cmd_replay(&w, &o);
  } else if (strcmp(cmd, "fisher") == 0) {
    code = worker__cmd_fisher(&w, &o);
  } else if (strcmp(cmd, "finetune") == 0) {
    code = worker__cmd_finetune(&w, &o);
  } else if (strcmp(cmd, "lid") == 0) {
    code = worker__cmd_lid(&w, &o);
  } else if (strcmp(cmd, "triage") == 0) {
    code = worker__cmd_triage(&w, &o);
  } else if (strcmp(cmd, "export-hf") == 0 || strcmp(cmd, "import-llmc") == 0) {
    bool exp = cmd[0] == 'e';
    if (o.npos != 2) {
      code = worker__usage("%s takes two arguments: %s", cmd, exp ? "CKPT DIR" : "FILE OUT");
    } else if ((exp ? export_hf(o.pos[0], o.pos[1], &err)
                    : import_llmc(o.pos[0], o.pos[1], &err)) != MN_OK) {
      code = worker__fail(&err);
    } else {
      worker__emit(json_pack("{s:s, s:s, s:s}", "event", cmd, "from", o.pos[0], "to", o.pos[1]));
      code = EXIT_OK;
    }
  } else {
    code = worker__usage("unknown command \"%s\"", cmd);
  }
  mn_config_fini(&w.cfg);
  return code;
}