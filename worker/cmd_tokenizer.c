/*
 * cmd_tokenizer.c -- `mnemo tokenizer train`: a language-balanced byte-level BPE learned from
 * JSONL (trainer/bpe_train.c), written as a tokenizer.json Hugging Face's tokenizers loads.
 * The command parses, calls tok_bpe_train and writes the file atomically; it writes nothing
 * when training fails.  With --parity, one event per round of the parity loop comes first,
 * and each language says what of its training text was left out as dev text (dev_left_out).
 */
#include "worker/worker_int.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const worker_opt worker__tokenizer_train_opts[] = {
    WORKER_TEXT("out", out, "FILE", "the tokenizer.json to write (atomically)"),
    WORKER_COUNT_UP_TO("vocab", vocab, "N", TOK_MAX_ID,
                       "ids in all: 256 bytes, <|endoftext|>, merged tokens, tags"),
    WORKER_TEXT("tags", tags, "TSV",
                "the language tags, code<TAB>tag id per line, numbered from 257 without a gap "
                "(the database's: mnemoctl export)"),
    WORKER_TEXT("balance", balance, "unimax|temperature|none",
                "how languages are weighted (default: temperature)"),
    WORKER_REAL("alpha", alpha, "A", -1e-300, 1,
                "temperature: shares proportional to characters^A (default: 0: uniform)"),
    WORKER_REAL("epochs", epochs, "E", 1 - 1e-12, INFINITY,
                "unimax: a language weighs at most E times its text (default: 4)"),
    WORKER_COUNT_UP_TO("max-bytes", max_bytes, "N", WORKER_BIG,
                       "training text read per language at most (0: all)"),
    WORKER_TEXT("split", split, "train|all",
                "the documents learned from (default: train: held-out text never is)"),
    WORKER_TEXT("parity", parity, "DEV.jsonl",
                "a development parallel set {lang, item, text} (never the test text): "
                "reweigh languages by their premium on it and train again (above)"),
    WORKER_COUNT_UP_TO("rounds", rounds, "R", TOK_MAX_ROUNDS,
                       "--parity: trainings in all (default: 6); the lowest max premium is kept"),
    WORKER_REAL("gamma", gamma, "G", 0, 8,
                "--parity: weights times (premium / median)^G a round (default: 4)"),
    WORKER_FLAG("floor", floor,
                "--parity: no language's weight falls below its balanced one (round 0's)"),
    WORKER_TEXT("reference", reference, "L", "--parity: the premium's reference (default: eng)"),
    WORKER_FLAG("dev-out", dev_out,
                "--parity: the result never learns from the dev texts either (default: the "
                "chosen shares are learned again from all the text)"),
    WORKER_OPT_END,
};

int worker__cmd_tokenizer_train(worker_ctx *w, worker_args *o)
{
  mn_error err = {0};
  tok_tags tags = {0};
  tok_train_stats *st = NULL;
  mn_atomic_file *f = NULL;
  char *json = NULL;
  int rc = MN_EXIT_FAIL;
  if (!o->out || !o->vocab || !o->tags || o->npos < 1)
    return worker__usage("tokenizer train needs --out FILE, --vocab N, --tags TSV (the database's "
                         "tag table: mnemoctl export writes it) and at least one JSONL file of "
                         "{\"lang\", \"text\"}");
  tok_train_options to = {.vocab = (uint32_t)o->vocab,
                          .balance = TOK_BALANCE_TEMPERATURE,
                          .alpha = o->alpha,
                          .epochs = o->epochs ? o->epochs : 4,
                          .max_bytes_per_lang = o->max_bytes,
                          .heldout_fraction = w->cfg.ingest.heldout_fraction,
                          .parity = o->parity,
                          .parity_ref = o->reference,
                          .rounds = (int)o->rounds,
                          .gamma = o->gamma,
                          .floor = o->floor,
                          .dev_out = o->dev_out};
  if ((o->rounds || o->gamma || o->reference || o->floor || o->dev_out) && !o->parity)
    return worker__usage("--rounds, --gamma, --floor, --reference and --dev-out go with --parity");
  const char *bal = o->balance ? o->balance : "temperature";
  if (strcmp(bal, "none") == 0)
    to.balance = TOK_BALANCE_NONE;
  else if (strcmp(bal, "unimax") == 0)
    to.balance = TOK_BALANCE_UNIMAX;
  else if (strcmp(bal, "temperature") != 0)
    return worker__usage("--balance must be unimax, temperature or none, got \"%s\"", bal);
  if (o->alpha && to.balance != TOK_BALANCE_TEMPERATURE)
    return worker__usage("--alpha is for --balance temperature");
  if (o->epochs && to.balance != TOK_BALANCE_UNIMAX)
    return worker__usage("--epochs is for --balance unimax");
  const char *split = o->split ? o->split : "train";
  if (strcmp(split, "all") == 0)
    to.all_splits = true;
  else if (strcmp(split, "train") != 0)
    return worker__usage("--split must be train or all, got \"%s\"", split);
  if (o->tags) {
    if (tok_tags_read(o->tags, &tags, &err) != MN_OK) return worker__fail(&err);
    if (tags.n == 0) {
      mn_error_set(&err, MN_ERR_INPUT, "%s: no language tags", o->tags);
      return worker__fail(&err);
    }
    to.tags = &tags;
  }
  if (!(st = malloc(sizeof *st))) {
    mn_error_set(&err, MN_ERR_NOMEM, "out of memory");
    goto out;
  }
  if (tok_bpe_train((const char *const *)o->pos, o->npos, &to, &json, st, &err) != MN_OK ||
      mn_atomic_open(o->out, 0644, &f, &err) != MN_OK ||
      mn_atomic_write(f, json, strlen(json), &err) != MN_OK)
    goto out;
  mn_status c = mn_atomic_commit(f, &err);
  f = NULL;
  if (c != MN_OK) goto out;
  for (int r = 0; o->parity && r < st->nrounds; r++)
    worker__emit(json_pack("{s:s, s:i, s:f, s:s, s:f, s:i, s:f}", "event", "tokenizer_parity_round",
                           "round", r, "max", st->round[r].max, "worst", st->round[r].worst,
                           "median", st->round[r].median, "languages", st->dev_langs, "seconds",
                           st->round[r].seconds));
  json_t *langs = json_object();
  for (int i = 0; i < st->nlangs; i++) {
    json_t *l =
        json_pack("{s:I, s:f}", "bytes", (json_int_t)st->lang[i].bytes, "share", st->lang[i].share);
    if (o->parity && !isnan(st->lang[i].premium))
      json_object_set_new(l, "dev_premium", json_real(st->lang[i].premium));
    if (o->parity)
      json_object_set_new(
          l, "dev_left_out",
          json_pack("{s:I, s:I, s:I}", "records", (json_int_t)st->lang[i].dev_records, "texts",
                    (json_int_t)st->lang[i].dev_texts, "bytes", (json_int_t)st->lang[i].dev_bytes));
    json_object_set_new(langs, st->lang[i].code, l);
  }
  worker__emit(json_pack("{s:s, s:s, s:i, s:i, s:s, s:I, s:I, s:I, s:I, s:f, s:f, s:o}", "event",
                         "tokenizer_train", "out", o->out, "vocab", (int)st->vocab, "merges",
                         (int)st->merges, "balance", bal, "records", (json_int_t)st->records,
                         "skipped", (json_int_t)st->skipped, "pieces", (json_int_t)st->pieces,
                         "words", (json_int_t)st->words, "read_s", st->read_s, "merge_s",
                         st->merge_s, "languages", langs));
  if (o->parity)
    worker__emit(json_pack("{s:s, s:s, s:s, s:i, s:i, s:f, s:b, s:f, s:f, s:b}", "event",
                           "tokenizer_parity", "parity", o->parity, "reference",
                           o->reference ? o->reference : "eng", "rounds", st->nrounds, "best_round",
                           st->best_round, "gamma", o->gamma ? o->gamma : TOK_PARITY_GAMMA, "floor",
                           o->floor, "max", st->round[st->best_round].max, "median",
                           st->round[st->best_round].median, "refit", st->refit));
  rc = MN_EXIT_OK;
out:
  mn_atomic_abort(f);
  free(json);
  free(st);
  return rc == MN_EXIT_OK ? rc : worker__fail(&err);
}
