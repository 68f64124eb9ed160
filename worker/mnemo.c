/*
 * mnemo.c -- the compute worker `mnemo`: files in, files out, no database.  This file is its
 * dispatcher: the table of commands, the global options, the parsing of each command's
 * options from its own table, and the help made from both.
 *
 *   mnemo [--config FILE] [--set KEY=VALUE]... [--json] COMMAND [ARGS]
 *     shard          JSONL {"lang", "text", "split"?} -> a token shard (cmd_shard.c)
 *     pretrain       shards -> a checkpoint, resumable (cmd_train.c)
 *     finetune       baseline + fresh shards + replay + Fisher -> candidate (cmd_train.c)
 *     eval           checkpoint + shards or evaluation sets -> bits per byte (cmd_eval.c)
 *     evalset        held-out documents, parallel items, probes -> an evaluation set (cmd_eval.c)
 *     guard          baseline + candidate + evaluation sets -> the verdict (cmd_eval.c)
 *     fisher         checkpoint + shards -> its diagonal Fisher per language (cmd_fisher.c)
 *     generate       checkpoint + language + prompt -> text (cmd_generate.c)
 *     bench          tokens/s and GFLOP/s of a training step (cmd_bench.c)
 *     replay absorb  shards' windows into the replay store (cmd_replay.c)
 *     replay verify  a replay store checked whole (cmd_replay.c)
 *     lid train      a language identifier from JSONL (cmd_lid.c)
 *     lid            the language of each line (cmd_lid.c)
 *     triage         user reports -> checks, language, groups, severity (cmd_triage.c)
 *     tokenizer train  JSONL -> a language-balanced byte-level BPE tokenizer.json (cmd_tokenizer.c)
 *     export-hf      a checkpoint and its tokenizer for Hugging Face (cmd_interop.c)
 *     import-llmc    an llm.c GPT-2 checkpoint into a mnemo checkpoint (cmd_interop.c)
 *
 * `mnemo man` writes the manual page mnemo(1) from the same table (the build installs it).
 *
 * Adding a command: a file cmd_NAME.c with its run function and option table (both declared
 * in worker_int.h), one row in `commands` below, and the file in worker/CMakeLists.txt; its
 * help, the parsing of its options and the refusal of any other
 * option come from the row.
 *
 * Progress is JSON lines on stdout (one object per event), or a progress line on stderr
 * when stderr is a terminal.  Exit codes (common/protocol.h): 0 done, 1 failure, 2 usage,
 * 3 a guard said no, 75 interrupted with complete outputs kept (a rerun resumes).  Only
 * main() decides to exit.
 */
#include "worker/worker_int.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- the table */

const worker_opt worker__no_opts[] = {WORKER_OPT_END};

static const worker_command commands[] = {
    {"shard", NULL,
     "--out FILE [--tags TSV] [--checkpoint CKPT] [--tokenizer FILE] [--split S] JSONL...",
     "documents {\"lang\", \"text\", \"split\"?} into a token shard",
     "Tokenizes the documents of the JSONL files into one shard, a section per language, with\n"
     "--tokenizer (a tokenizer.json or a checkpoint's), else --checkpoint's, else bytes.\n"
     "--split keeps a document by its record's stored \"split\" (train|heldout), else by the\n"
     "hash rule at ingest.heldout_fraction.  Language tags come from --tags (code<TAB>tag id,\n"
     "as the database assigned them: mnemoctl export writes DIR/tags.tsv), from --checkpoint\n"
     "(the model's own) or the tokenizer's, all of them when they agree; a document in a\n"
     "language without a tag there is refused by file:line.  No tag is ever numbered from\n"
     "the input's order.\n",
     worker__shard_opts, false, worker__cmd_shard},
    {"pretrain", NULL, "--out DIR [--tokenizer FILE] [--resume CKPT] [--steps N] SHARD...",
     "train a model on shards; DIR/model.safetensors (+ .opt) is resumable",
     "Trains the configured model (model.*, train.*) on windows of the shards.  SIGTERM or\n"
     "SIGINT saves a checkpoint at the end of the step and exits 75; --resume continues it\n"
     "bit-identically.  --steps N stops after step N of train.steps (the schedule still\n"
     "spans train.steps, so a run cut in parts is the same run).  --tokenizer: the shards'\n"
     "tokenizer (a tokenizer.json or a checkpoint; default bytes), carried by the checkpoint;\n"
     "the model gets its ids and model.vocab - 257 tag slots.\n",
     worker__train_opts, false, worker__cmd_pretrain},
    {"finetune", NULL, "--spec JOB.yaml --out DIR [--resume CKPT] [--steps N] SHARD...",
     "refresh finetune.baseline on fresh shards (replay, EWC, unfreezing)",
     "Fine-tunes finetune.baseline on the fresh shards: replayed windows from\n"
     "finetune.replay_store in every batch, EWC against the baseline with finetune.fisher,\n"
     "progressive unfreezing by finetune.stages (finetune.* keys).  By default the replayed\n"
     "windows are distilled towards the baseline's predictions (finetune.distill 0.5) and a\n"
     "drift controller gives up to 2x more replay to the languages the run forgets most\n"
     "(finetune.adapt_max_boost; 1: off); both need replayed windows, and progress lines\n"
     "carry each language's drift and factor.  The job spec is a config file and replaces\n"
     "--config.  Resumable as pretrain is (a run begun before these defaults resumes when\n"
     "its spec says finetune.distill: 0 and finetune.adapt_max_boost: 1, as it began).  The\n"
     "baseline's tokenizer is kept (--tokenizer is refused); the shards must be made by it.\n",
     worker__train_opts, true, worker__cmd_finetune},
    {"eval", NULL,
     "--checkpoint CKPT [--per-doc] [--max-tokens N] SHARD...  |  --checkpoint CKPT "
     "--sets SET[,SET] [--per-doc] [--cache DIR]",
     "bits per byte per language (and NLL per document or item)",
     "On shards: bits per byte of each language (its text tokens' NLL over the UTF-8 bytes\n"
     "they stand for, whatever the tokenizer), every document scored from its tag in windows\n"
     "of train.seq_len.  On evaluation sets (--sets): bits per byte per language and kind of\n"
     "item, cached per (checkpoint, set version) under --cache.\n",
     worker__eval_opts, false, worker__cmd_eval},
    {"evalset", NULL,
     "--out SET [--tags TSV | --checkpoint CKPT] [--parallel FILE [--reference L]] [--probes "
     "FILE] [--max-items N] [--max-item-bytes B] [HELDOUT.jsonl...]",
     "a versioned, checksummed evaluation set",
     "Held-out documents (each record's stored \"split\"; a record without one by the hash\n"
     "rule at ingest.heldout_fraction), parallel items and report probes, written as one\n"
     "file whose checksum is its version.\n",
     worker__evalset_opts, false, worker__cmd_evalset},
    {"guard", NULL,
     "--baseline CKPT --candidate CKPT --sets SET[,SET] [--cache DIR] [--must-improve L,L] "
     "[--history VERDICT,...] [--out VERDICT.json]",
     "every per-language guard (guards.*): exit 0 pass, 3 fail",
     "Scores the baseline and the candidate on the same sets and applies every guard rule;\n"
     "the verdict is a JSON line (a table on a terminal) and, with --out, a file.\n",
     worker__guard_opts, false, worker__cmd_guard},
    {"fisher", NULL,
     "--checkpoint CKPT --out FILE [--windows N] [--weighting equal|share] [--previous FILE "
     "[--gamma G]] SHARD...",
     "the diagonal Fisher of the weights, per language, for EWC",
     "Estimates the diagonal Fisher from windows of each language's text; --previous makes it\n"
     "the online estimate gamma (default: 0.9) * that + this one.\n",
     worker__fisher_opts, false, worker__cmd_fisher},
    {"generate", NULL,
     "--checkpoint CKPT --lang LANG [--prompt TEXT] [--tokens N] [--temperature T] [--top-k K] "
     "[--seed S] [--script CODE]",
     "text from a checkpoint in a language",
     "Samples the model's tokenizer's text tokens and its end of text, which ends the text\n"
     "(top-k, temperature, seeded), and decodes them; only tokens that continue the text as\n"
     "UTF-8 are sampled (a character cut by --tokens is left out).\n"
     "--script CODE adds the share of the generated letters written in that script.\n",
     worker__generate_opts, false, worker__cmd_generate},
    {"bench", NULL, "[--steps N] [--stages] [--ewc] [--device cpu|cuda [--math fp32|tf32|bf16]]",
     "tokens/s and GFLOP/s of a training step for the configured model",
     "--stages: the step time with the top k blocks trainable (unfreezing); --ewc: with the\n"
     "EWC penalty fused into the update; --device cuda: on the GPU, tokens/s and MFU against\n"
     "the card's dense bf16 peak (--math: how products compute; weights stay fp32).\n",
     worker__bench_opts, false, worker__cmd_bench},
    {"replay", "absorb", "--store FILE --capacity N SHARD...",
     "offer shards' windows to each language's replay reservoir",
     "Cuts the shards' sections into windows of train.seq_len + 1 tokens and offers them to\n"
     "each language's reservoir of at most --capacity windows; the store (created when\n"
     "absent) is replaced atomically.\n",
     worker__replay_absorb_opts, false, worker__cmd_replay_absorb},
    {"replay", "verify", "STORE", "check a replay store whole",
     "Reads every field and the checksum; prints the windows held and seen per language.\n",
     worker__no_opts, false, worker__cmd_replay_verify},
    {"lid", "train", "--out MODEL [--max-bytes N] TRAIN.jsonl...",
     "a language identifier from {\"lang\", \"text\"} records",
     "Trains the language identifier of triage/lid.c on the records' texts.\n",
     worker__lid_train_opts, false, worker__cmd_lid_train},
    {"lid", NULL, "--model MODEL [FILE]",
     "the language of each line (or JSONL \"text\") and its confidence",
     "Classifies each line of FILE (or stdin): its language, its confidence, and the spans\n"
     "of a code-switched text.  A tab-separated line each, or JSON lines with --json.\n",
     worker__lid_opts, false, worker__cmd_lid},
    {"triage", NULL, "--checkpoint CKPT --model LID --typical FILE [--heldout JSONL] [FILE]",
     "user reports: checks, language, near-duplicate groups, severity",
     "Reads the triage batch (JSONL from mnemod, common/protocol.h) from FILE or stdin and\n"
     "writes one line per new report: its checks, language, group of near-duplicates and\n"
     "severity against typical held-out text.\n",
     worker__triage_opts, false, worker__cmd_triage},
    {"tokenizer", "train",
     "--out FILE --vocab N --tags TSV [--balance unimax|temperature|none] [--alpha A] "
     "[--epochs E] [--max-bytes N] [--split train|all] [--parity DEV.jsonl [--rounds R] "
     "[--gamma G] [--reference L] [--floor] [--dev-out]] JSONL...",
     "a language-balanced byte-level BPE tokenizer.json from {\"lang\", \"text\"} records",
     "Learns byte-level BPE merges on the MNEMO pre-tokenizer's pieces, each language's counts\n"
     "weighted so languages are balanced as replay balances them (--balance temperature\n"
     "with --alpha, 0 uniform; unimax with --epochs; none: the data's mix).  Only training\n"
     "records are read (each record's stored \"split\", else the hash rule at\n"
     "ingest.heldout_fraction).  Every token is whole UTF-8 characters or the first bytes of\n"
     "one.  --parity DEV.jsonl: the dev texts are left out of the counts, each round reweighs the\n"
     "languages by their premium on DEV, and the best round's shares are learned again from\n"
     "all the text, dev texts included (--dev-out: not), which reads JSONL twice: files only,\n"
     "and --max-bytes then counts the dev texts too.  Writes a tokenizer.json Hugging Face's\n"
     "tokenizers loads: ids 0-255 the bytes, 256 <|endoftext|>, merged tokens, then the tags.\n"
     "docs/tokenizer.md.\n",
     worker__tokenizer_train_opts, false, worker__cmd_tokenizer_train},
    {"export-hf", NULL, "CKPT DIR", "a checkpoint and its tokenizer for Hugging Face",
     "Writes DIR/config.json and DIR/model.safetensors in Hugging Face's layout of the model's\n"
     "family (GPT2LMHeadModel for a model mnemo trained; an imported model's own class,\n"
     "config and dtypes, its vocab_size counting the language tags' rows), and\n"
     "DIR/tokenizer.json and DIR/tokenizer_config.json: the model's tokenizer (the byte one\n"
     "too), its language tags as special tokens.  docs/models.md.\n",
     worker__no_opts, false, worker__cmd_export_hf},
    {"import-hf", NULL, "[--tag-rows N] [--tags TSV] DIR OUT",
     "a Hugging Face model folder into a mnemo checkpoint",
     "Reads DIR/config.json (GPT2LMHeadModel, LlamaForCausalLM or Qwen2ForCausalLM), its\n"
     "weights (model.safetensors or the shards model.safetensors.index.json names; F32, BF16\n"
     "or F16) and DIR/tokenizer.json into the checkpoint OUT.  Language tags get rows of\n"
     "their own after the tokenizer's ids: at least --tag-rows N (default: 256; a folder mnemo\n"
     "exported keeps its rows), rows the model has past its tokenizer first, each new one\n"
     "the mean of the tokenizer's rows.  --tags gives the checkpoint the database's tags\n"
     "(as mnemoctl export writes them, numbered from 257: moved to follow the tokenizer, as\n"
     "mnemo shard moves them); give it the languages you have text for.  Whatever it does\n"
     "not implement (a class, a config value, a dtype, a tensor) is refused by name, and\n"
     "nothing is written.  docs/models.md.\n",
     worker__import_hf_opts, false, worker__cmd_import_hf},
    {"import-llmc", NULL, "FILE OUT", "an llm.c fp32 GPT-2 checkpoint into a mnemo checkpoint",
     "Reads llm.c's fp32 checkpoint (tensors stacked over layers) into our layout, exactly.\n",
     worker__no_opts, false, worker__cmd_import_llmc},
};
static const size_t ncommands = sizeof commands / sizeof commands[0];

/* ---------------------------------------------------------------- shared helpers */

static const worker_command *current; /* the command running, for usage messages */

/* supervised_error -- under mnemod (MNEMO_SUPERVISED=1), what kind of failure stops the
 * worker, as a JSON line first: mnemod does not retry what would fail the same way (bad
 * input, a bad config, a corrupt file, a usage error).  The message escaped: it may quote
 * bytes that are not UTF-8, which JSON cannot carry. */
static void supervised_error(const char *code, bool permanent, const char *msg)
{
  const char *sup = getenv("MNEMO_SUPERVISED");
  if (!sup || strcmp(sup, "1") != 0) return;
  char text[1024];
  mn_text_escape(msg, strlen(msg), 0, text, sizeof text, NULL);
  worker__emit(json_pack("{s:s, s:s, s:b, s:s}", "event", "error", "code", code, "permanent",
                         permanent, "message", text));
}

int worker__fail(const mn_error *err)
{
  fprintf(stderr, "mnemo: %s\n", err->msg);
  if (err->detail[0]) fprintf(stderr, "  detail: %s\n", err->detail);
  /* under mnemod: what kind of failure, so that it does not retry what would fail the
   * same way (bad input, a bad config, a corrupt file, a usage error) */
  bool permanent = err->code == MN_ERR_INPUT || err->code == MN_ERR_CONFIG ||
                   err->code == MN_ERR_CORRUPT || err->code == MN_ERR_USAGE;
  supervised_error(mn_status_name(err->code), permanent, err->msg);
  return err->code == MN_ERR_USAGE ? MN_EXIT_USAGE : MN_EXIT_FAIL;
}

int worker__usage(const char *fmt, ...)
{
  va_list ap;
  char msg[512];
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  supervised_error("usage", true, msg); /* a command line the worker refuses stays refused */
  va_start(ap, fmt);
  fprintf(stderr, "mnemo: ");
  vfprintf(stderr, fmt, ap);
  if (current)
    fprintf(stderr, "\nTry \"mnemo %s --help\".\n", current->name);
  else
    fprintf(stderr, "\nTry \"mnemo --help\".\n");
  va_end(ap);
  return MN_EXIT_USAGE;
}

bool worker__silent;

/* worker__progress_out -- where a progress line goes: stderr when it is a terminal, --json
 * was not given and this process speaks (worker__silent), else NULL (no line) */
FILE *worker__progress_out(const worker_ctx *w)
{
  return isatty(STDERR_FILENO) && !w->json && !worker__silent ? stderr : NULL;
}

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

/* ---------------------------------------------------------------- help */

static void print_commands(FILE *f)
{
  fprintf(f, "usage: mnemo [--config FILE] [--set KEY=VALUE]... [--json] COMMAND [ARGS]\n\n"
             "the compute worker of mnemo: files in, files out, no database\n\n"
             "commands:\n");
  for (size_t i = 0; i < ncommands; i++) {
    char name[32];
    snprintf(name, sizeof name, "%s%s%s", commands[i].name, commands[i].sub ? " " : "",
             commands[i].sub ? commands[i].sub : "");
    mn_help_item(f, name, 15, commands[i].summary);
  }
  fputc('\n', f);
  mn_help_fill(f,
               "Run \"mnemo COMMAND --help\" for a command's arguments and options, \"mnemo "
               "man\" for the manual page mnemo(1) in roff, \"mnemo completion bash|zsh\" for a "
               "shell's completion.\n\n"
               "Global options (before the command): --config FILE (default: $MNEMO_CONFIG, else "
               "the built-in defaults), --set KEY=VALUE (a config key, after the file), --json "
               "(JSON lines even on "
               "a terminal), --help, --version.\n\n"
               "The model and training come from the config (model.*, train.*; presets in "
               "configs/models/). Progress is JSON lines on stdout, or a progress line on a "
               "terminal. Exit status: 0 done, 1 failure, 2 usage, 3 a guard said no, 75 "
               "interrupted (resumable).",
               0, 0);
  fputc('\n', f);
}

static void command_help(const worker_command *c)
{
  char head[64];
  snprintf(head, sizeof head, "usage: mnemo %s%s%s ", c->name, c->sub ? " " : "",
           c->sub ? c->sub : "");
  mn_help_usage(stdout, head, c->args);
  printf("\n");
  mn_help_fill(stdout, c->summary, 0, 0);
  printf("\n\n");
  mn_help_fill(stdout, c->help, 0, 0);
  printf("\n\noptions:\n");
  for (const worker_opt *o = c->opts; o->name; o++) {
    char left[64];
    snprintf(left, sizeof left, "--%s%s%s", o->name, o->value ? " " : "", o->value ? o->value : "");
    mn_help_item(stdout, left, 24, o->help);
  }
  if (c->spec)
    mn_help_item(stdout, "--spec JOB.yaml", 24, "the job spec: a config file, replaces --config");
  mn_help_item(stdout, "--json", 24, "JSON lines even on a terminal");
  mn_help_item(stdout, "--help", 24, "this text");
}

/* help_of -- every row called name (of sub, when given): `mnemo replay --help` shows both;
 * false when no row is */
static bool help_of(const char *name, const char *sub)
{
  bool first = true;
  for (size_t i = 0; i < ncommands; i++) {
    const worker_command *c = &commands[i];
    if (strcmp(c->name, name) != 0 || (sub && (!c->sub || strcmp(c->sub, sub) != 0))) continue;
    if (!first) printf("\n");
    command_help(c);
    first = false;
  }
  return !first;
}

/* print_completion -- the shell's completion script, from the command table */
static int print_completion(const char *shell)
{
  enum { MAXO = 512 };
  static mn_comp_cmd cmds[sizeof commands / sizeof commands[0]];
  static mn_comp_opt opts[MAXO];
  size_t no = 0;
  for (size_t i = 0; i < ncommands; i++) {
    const worker_command *c = &commands[i];
    cmds[i] = (mn_comp_cmd){c->name, c->sub, c->summary, c->args, opts + no, 0};
    if (c->spec && no < MAXO)
      opts[no++] = (mn_comp_opt){"spec", "FILE", "a job spec instead of the config"},
      cmds[i].nopts++;
    for (const worker_opt *o = c->opts; o->name && no < MAXO; o++, cmds[i].nopts++)
      opts[no++] = (mn_comp_opt){o->name, o->value, o->help};
  }
  static const mn_comp_opt globals[] = {
      {"json", NULL, "JSON lines even on a terminal"},
      {"help", NULL, "help on the command"},
      {"config", "FILE", "configuration file"},
      {"set", "KEY=VALUE", "a configuration key, after the file"},
  };
  if (mn_completion(stdout, shell, "mnemo", cmds, ncommands, globals, 4) != 0)
    return worker__usage("no completion for \"%s\": bash or zsh", shell);
  return MN_EXIT_OK;
}

/* print_man -- mnemo(1) in roff, from the command table, so that the page cannot drift from
 * what mnemo accepts: `mnemo man` (the build writes it beside mnemoctl's pages) */
static void print_man(FILE *f)
{
  fprintf(f,
          ".TH mnemo 1 \"2026-12-04\" \"mnemo %s\" \"mnemo manual\"\n.SH NAME\nmnemo \\- "
          "the compute worker of mnemo: files in, files out, no database\n",
          MNEMO_VERSION);
  fputs(".SH SYNOPSIS\n\\fBmnemo\\fR [\\fB\\-\\-config\\fR \\fIFILE\\fR] [\\fB\\-\\-set\\fR "
        "\\fIKEY\\fR=\\fIVALUE\\fR]... [\\fB\\-\\-json\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]\n"
        ".SH DESCRIPTION\nmnemo shards documents, trains, fine-tunes, evaluates and guards "
        "models, and triages reports, on files alone; \\fBmnemod\\fR runs it as a child for "
        "each step of a job, and operators may run it by hand.  The model and training come "
        "from the configuration (model.*, train.*).  Progress is JSON lines on standard "
        "output, or a progress line on a terminal.\n.SH COMMANDS\n",
        f);
  for (size_t i = 0; i < ncommands; i++) {
    const worker_command *c = &commands[i];
    fprintf(f, ".TP\n\\fB%s%s%s\\fR ", c->name, c->sub ? " " : "", c->sub ? c->sub : "");
    mn_roff(f, c->args);
    fputc('\n', f);
    mn_roff(f, c->summary);
    fputs("\n.br\n", f);
    mn_roff(f, c->help);
    for (const worker_opt *o = c->opts; o->name; o++) {
      fprintf(f, ".RS\n.TP\n\\fB\\-\\-");
      mn_roff(f, o->name);
      fputs("\\fR", f);
      if (o->value) {
        fputs(" \\fI", f);
        mn_roff(f, o->value);
        fputs("\\fR", f);
      }
      fputc('\n', f);
      mn_roff(f, o->help);
      fputs("\n.RE\n", f);
    }
    if (c->spec)
      fputs(".RS\n.TP\n\\fB\\-\\-spec\\fR \\fIJOB.yaml\\fR\nthe job spec: a config file, "
            "replaces \\fB\\-\\-config\\fR\n.RE\n",
            f);
  }
  fputs(".SH OPTIONS\nBefore the command:\n.TP\n\\fB\\-\\-config\\fR \\fIFILE\\fR\nthe "
        "configuration (default: $MNEMO_CONFIG, else the defaults)\n.TP\n\\fB\\-\\-set\\fR "
        "\\fIKEY\\fR=\\fIVALUE\\fR\na configuration key, applied after the file\n.TP\n"
        "\\fB\\-\\-json\\fR\nJSON lines even on a terminal\n.TP\n\\fB\\-\\-help\\fR\nthe "
        "commands; \\fBmnemo\\fR \\fICOMMAND\\fR \\fB\\-\\-help\\fR for one command\n.TP\n"
        "\\fB\\-\\-version\\fR\nthe version\n"
        ".SH EXIT STATUS\n0 done, 1 failure, 2 usage error, 3 a guard said no, 75 interrupted "
        "(a rerun resumes).\n"
        ".SH SEE ALSO\n\\fBmnemod\\fR(8), \\fBmnemoctl\\fR(1), \\fBmnemo.yaml\\fR(5)\n",
        f);
}

/* ---------------------------------------------------------------- parsing */

/* is_option -- whether s names an option command c takes (or one every command takes) */
/* opt_of -- the row of c's table for "--name", or NULL */
static const worker_opt *opt_of(const worker_command *c, const char *s)
{
  if (strncmp(s, "--", 2) != 0) return NULL;
  for (const worker_opt *o = c->opts; o->name; o++)
    if (strcmp(s + 2, o->name) == 0) return o;
  return NULL;
}

static bool is_option(const worker_command *c, const char *s)
{
  return !strcmp(s, "--help") || !strcmp(s, "--json") || (c->spec && !strcmp(s, "--spec")) ||
         opt_of(c, s);
}

/* command_find -- the row of `name` and, when argv[0] is one of its subcommands, that one (*used 1)
 */
static const worker_command *command_find(const char *name, int argc, char **argv, int *used)
{
  const worker_command *plain = NULL;
  bool known = false;
  *used = 0;
  for (size_t i = 0; i < ncommands; i++) {
    const worker_command *c = &commands[i];
    if (strcmp(c->name, name) != 0) continue;
    known = true;
    if (!c->sub) {
      plain = c;
    } else if (argc > 0 && strcmp(argv[0], c->sub) == 0) {
      *used = 1;
      return c;
    }
  }
  if (plain || !known) return plain;
  return NULL; /* a command of subcommands only, without one */
}

static bool has_subs(const char *name)
{
  for (size_t i = 0; i < ncommands; i++)
    if (commands[i].sub && strcmp(commands[i].name, name) == 0) return true;
  return false;
}

/*
 * parse -- the command's options from its table (and --json, --spec where it takes one),
 * in any order among its arguments; the arguments stay in argv's order in a->pos.  Returns
 * 1 when help was shown, -1 on a usage error (printed), else 0.
 */
static int parse(const worker_command *c, worker_ctx *w, int argc, char **argv, worker_args *a,
                 const char **spec)
{
  a->pos = argv;
  a->npos = 0;
  bool options = true;
  for (int i = 0; i < argc; i++) {
    const char *s = argv[i];
    if (options && strcmp(s, "--") == 0) { /* the rest are arguments */
      options = false;
      continue;
    }
    if (!options || s[0] != '-' || s[1] != '-') {
      a->pos[a->npos++] = argv[i];
      continue;
    }
    if (strcmp(s, "--help") == 0) {
      help_of(c->name, c->sub);
      return 1;
    }
    if (strcmp(s, "--json") == 0) {
      w->json = true;
      continue;
    }
    if (c->spec && strcmp(s, "--spec") == 0) {
      if (i + 1 >= argc) goto no_value;
      *spec = argv[++i];
      continue;
    }
    const worker_opt *o = opt_of(c, s);
    if (!o) {
      const char *names[64];
      size_t nn = 0;
      for (const worker_opt *k = c->opts; k->name && nn < 64; k++)
        names[nn++] = k->name;
      const char *near = mn_nearest(s + 2, names, nn);
      if (near)
        worker__usage("unknown option \"%s\" for \"%s%s%s\"; did you mean \"--%s\"?", s, c->name,
                      c->sub ? " " : "", c->sub ? c->sub : "", near);
      else
        worker__usage("unknown option \"%s\" for \"%s%s%s\"", s, c->name, c->sub ? " " : "",
                      c->sub ? c->sub : "");
      return -1;
    }
    char *slot = (char *)a + o->offset;
    if (o->kind == WORKER_OPT_FLAG) {
      *(bool *)(void *)slot = true;
      continue;
    }
    if (i + 1 >= argc) goto no_value;
    const char *v = argv[++i];
    if (is_option(c, v)) { /* `--out --split x`: a forgotten value (a prompt "-- hi" is text) */
      worker__usage("%s wants a value, got the option \"%s\"", s, v);
      return -1;
    }
    if (o->kind == WORKER_OPT_TEXT) {
      *(const char **)(void *)slot = v;
    } else if (o->kind == WORKER_OPT_COUNT) {
      int64_t *n = (int64_t *)(void *)slot;
      int64_t most = o->hi <= 0 ? INT32_MAX : o->hi >= 9.2e18 ? INT64_MAX : (int64_t)o->hi;
      if (!mn_parse_i64(v, n) || *n < 0 || *n > most) {
        worker__usage("%s wants a number from 0 to %lld, got \"%s\"", s, (long long)most, v);
        return -1;
      }
    } else {
      char *end;
      double x = strtod(v, &end);
      if (*end || isspace((unsigned char)*v) || !isfinite(x) || !(x > o->lo) || x > o->hi) {
        char range[64];
        if (isinf(o->hi))
          snprintf(range, sizeof range, "(%g, inf)", o->lo);
        else
          snprintf(range, sizeof range, "(%g, %g]", o->lo, o->hi);
        worker__usage("%s wants a number in %s, got \"%s\"", s, range, v);
        return -1;
      }
      *(double *)(void *)slot = x;
    }
  }
  return 0;
no_value:
  worker__usage("%s needs a value", argv[argc - 1]);
  return -1;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
  worker_ctx w = {0};
  mn_error err = {0};
  const char *config_path = getenv("MNEMO_CONFIG");
  const char *sets[64];
  int nsets = 0, i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      print_commands(stdout);
      return MN_EXIT_OK;
    } else if (strcmp(argv[i], "--version") == 0) {
      printf("mnemo %s\n", MNEMO_VERSION);
      return MN_EXIT_OK;
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
    print_commands(stderr);
    return MN_EXIT_USAGE;
  }
  const char *name = argv[i++];
  if (strcmp(name, "man") == 0) { /* mnemo man: mnemo(1) in roff */
    if (i < argc) return worker__usage("man takes no arguments");
    print_man(stdout);
    return MN_EXIT_OK;
  }
  if (strcmp(name, "completion") == 0) { /* mnemo completion bash|zsh */
    if (argc - i != 1) return worker__usage("completion takes one shell: bash or zsh");
    return print_completion(argv[i]);
  }
  if (strcmp(name, "help") == 0) { /* mnemo help [COMMAND [SUB]] */
    if (i >= argc) {
      print_commands(stdout);
      return MN_EXIT_OK;
    }
    int used;
    if (!command_find(argv[i], argc - i - 1, argv + i + 1, &used) && !has_subs(argv[i]))
      return worker__usage("unknown command \"%s\"", argv[i]);
    if (!help_of(argv[i], i + 1 < argc ? argv[i + 1] : NULL))
      return worker__usage("no command \"%s %s\"", argv[i], argv[i + 1]);
    return MN_EXIT_OK;
  }
  int used;
  const worker_command *c = command_find(name, argc - i, argv + i, &used);
  if (!c && has_subs(name)) {
    const char *sub = i < argc ? argv[i] : "";
    if (strcmp(sub, "--help") == 0) {
      help_of(name, NULL);
      return MN_EXIT_OK;
    }
    mn_buf subs; /* "absorb or verify" */
    mn_buf_init(&subs, 256);
    for (size_t k = 0, n = 0; k < ncommands; k++)
      if (commands[k].sub && strcmp(commands[k].name, name) == 0)
        (void)!mn_buf_appendf(&subs, NULL, "%s%s", n++ ? " or " : "", commands[k].sub);
    int code = worker__usage("%s wants %s, got \"%s\"", name, subs.data ? subs.data : "", sub);
    mn_buf_fini(&subs);
    return code;
  }
  if (!c) { /* the nearest command's name, for a typo */
    const char *names[sizeof commands / sizeof commands[0]];
    for (size_t k = 0; k < ncommands; k++)
      names[k] = commands[k].name;
    const char *near = mn_nearest(name, names, ncommands);
    return near ? worker__usage("unknown command \"%s\"; did you mean \"%s\"?", name, near)
                : worker__usage("unknown command \"%s\"", name);
  }
  current = c;
  i += used;
  worker_args a = {.tag_rows = -1}; /* -1: not given (import-hf's default) */
  const char *spec = NULL;
  int p = parse(c, &w, argc - i, argv + i, &a, &spec);
  if (p != 0) return p > 0 ? MN_EXIT_OK : MN_EXIT_USAGE;
  if (spec) config_path = spec; /* a job spec is a config file: it replaces --config */
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
  int code = c->run(&w, &a);
  mn_config_fini(&w.cfg);
  return code;
}
