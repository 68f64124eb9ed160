/*
 * ingest_int.h -- what ingest's two files share: the state of one run and its batches.
 * daemon/ingest_read.c is the reader thread (files to checked units to batches);
 * daemon/ingest.c is the loading side and ingest_run.  Not a public header.
 */
#ifndef MNEMO_INGEST_INT_H
#define MNEMO_INGEST_INT_H

#include "daemon/daemon.h"

#include <pthread.h>
#include <stdatomic.h>

#define BATCH_BYTES      (4u << 20) /* text per batch: a COPY and a hash query each */
#define BATCHES          3          /* in flight: one filling, one queued, one loading */
#define READ_CHUNK       (1u << 20)
#define MAX_SOURCE_BYTES 200

/* ---------------------------------------------------------------- state of one ingest_state */

typedef struct known_lang {
  char code[16];
  bool enabled;
} known_lang;

/* One good unit waiting in a batch. */
typedef struct batch_row {
  size_t off;      /* of its text in batch.text */
  uint32_t len;    /* bytes of text */
  uint32_t lang;   /* index into ingest_state.langs */
  uint32_t source; /* index of its source name, in the order names were first seen */
  bool heldout, stored;
  uint8_t sha[MN_SHA256_LEN];
} batch_row;

#define BATCH_ROWS 65536 /* rows per batch, whatever their size */

typedef struct batch {
  mn_buf text;
  batch_row *rows;
  size_t n;
  char **new_sources; /* names first seen in this batch, in index order */
  size_t n_new, cap_new;
  int64_t bad; /* bad units read so far, when the batch was shipped */
  bool last;   /* the reader's final batch (possibly empty) */
} batch;

typedef struct ingest_state {
  PGconn *conn;
  const ingest_options *opt;
  ingest_result *res;
  known_lang *langs;
  size_t nlangs;
  double t0;
  int64_t bytes_total; /* the inputs' sizes when all are regular files (progress), else 0 */

  /* the reader thread's own state */
  mn_buf unit; /* the unit being built (paragraphs) */
  mn_buf line; /* the line just read */
  mn_buf norm; /* a unit's text with its "\r\n" made "\n" */
  mn_buf rec;  /* the strings of a JSONL record read without jansson, decoded */
  mn_atomic_file *rejects;
  mn_progress prog; /* the terminal's progress line (off unless opt->progress) */
  /* hashes read by this run (open addressing): a text repeated in the input is
   * loaded once, the first occurrence with its language and source */
  uint8_t (*seen)[MN_SHA256_LEN];
  size_t seen_cap, seen_n;
  char **sources; /* source names by index, and an open-addressing index of them */
  size_t nsources, sources_cap;
  uint32_t *source_slots; /* index + 1; 0 is empty */
  size_t slots_cap;
  int64_t *lang_units; /* good units per language */
  batch *cur;          /* the batch being filled */
  mn_status reader_rc;
  mn_error reader_err;

  /* the hand-over between the two threads */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  batch *full[BATCHES]; /* a FIFO of shipped batches */
  size_t full_head, nfull;
  batch *spare[BATCHES];
  size_t nspare;
  atomic_bool stop; /* the loader failed: the reader stops at its next batch */
  batch pool[BATCHES];

  /* the loading thread's own state */
  int64_t *source_ids; /* mnemo.sources ids by index */
  size_t nsource_ids, source_ids_cap;
  int64_t *lang_inserted, *lang_bytes, *lang_heldout;
  mn_buf send; /* binary COPY data on its way */
} ingest_state;

/* seen_add -- true when sha is new to this run (and now recorded); false for a repeat,
 * or with *rc set when memory runs out. */

typedef struct reader_job {
  ingest_state *r;
  char *const *files;
  size_t nfiles;
} reader_job;

/* ingest__reader_main -- the reader thread: every file of a reader_job into batches */
void *ingest__reader_main(void *arg);
/* ingest__name_problem -- why a source name cannot be stored, or NULL (why has the room) */
const char *ingest__name_problem(const char *name, char *why, size_t cap);

#endif /* MNEMO_INGEST_INT_H */
