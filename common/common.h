/*
 * common.h -- the pieces every mnemo module stands on.
 *
 * Errors (mn_status, mn_error), logging (one line per event, logfmt or JSON,
 * to stderr), UTF-8 validation and script tables, atomic file writes, SHA-256, a
 * bounded growable buffer, one JSONL reader and little-endian helpers (the contract
 * between mnemod and the worker is in protocol.h).  Nothing here knows about PostgreSQL, models or
 * config files; modules above use it, never the other way round.
 *
 * Invariants:
 *  - mn_status values are stored in the database (jobs.error_code): append
 *    only, never renumber or remove.
 *  - every function that can fail returns mn_status and, when it fails,
 *    leaves a message in the caller's mn_error (which may be NULL).
 */
#ifndef MNEMO_COMMON_H
#define MNEMO_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MN_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define MN_NODISCARD    __attribute__((warn_unused_result))
#else
#define MN_PRINTF(a, b)
#define MN_NODISCARD
#endif

/* ---------------------------------------------------------------- errors */

typedef enum { /* append only: stored in jobs.error_code */
               MN_OK = 0,
               MN_ERR_NOMEM,
               MN_ERR_IO,
               MN_ERR_CONFIG,
               MN_ERR_DB,
               MN_ERR_INPUT,
               MN_ERR_CORRUPT,
               MN_ERR_CUDA,
               MN_ERR_NUMERIC,
               MN_ERR_HTTP,
               MN_ERR_USAGE,
               MN_ERR_INTERNAL, /* a library failed where it should not (OpenSSL digest) */
               MN_ERR_STATE,    /* the thing moved on: a job's attempt fenced out, a state */
} mn_status;

typedef struct mn_error {
  mn_status code;
  char msg[256];    /* primary message: lower case, no final period */
  char detail[512]; /* library text, hints; may be empty */
} mn_error;

/* mn_status_name -- short stable name of a status ("io", "config", ...). */
const char *mn_status_name(mn_status code);

/*
 * mn_error_set -- record a failure in err (if err is not NULL) and return code.
 * The detail is cleared.  Messages longer than the field are truncated.
 */
mn_status mn_error_set(mn_error *err, mn_status code, const char *fmt, ...) MN_PRINTF(3, 4);

/* mn_error_detail -- set the detail of an error already set; returns err->code. */
mn_status mn_error_detail(mn_error *err, const char *fmt, ...) MN_PRINTF(2, 3);

/* mn_error_prefix -- prepend "prefix: " to the message (adds context on the way up). */
mn_status mn_error_prefix(mn_error *err, const char *fmt, ...) MN_PRINTF(2, 3);

/* mn_error_clear -- reset err to MN_OK with empty messages. */
void mn_error_clear(mn_error *err);

/* ---------------------------------------------------------------- logging */

typedef enum { MN_LOG_DEBUG = 0, MN_LOG_INFO, MN_LOG_WARN, MN_LOG_ERROR } mn_log_level;
typedef enum { MN_LOG_LOGFMT = 0, MN_LOG_JSON } mn_log_format;

typedef enum { MN_KV_NONE = 0, MN_KV_STR, MN_KV_INT, MN_KV_DBL, MN_KV_BOOL } mn_kv_type;

/* One field of a log event. */
typedef struct mn_kv {
  const char *key;
  mn_kv_type type;
  union {
    const char *s;
    long long i;
    double d;
    bool b;
  } v;
} mn_kv;

#define MN_KV_S(k, x) ((mn_kv){.key = (k), .type = MN_KV_STR, .v.s = (x)})
#define MN_KV_I(k, x) ((mn_kv){.key = (k), .type = MN_KV_INT, .v.i = (long long)(x)})
#define MN_KV_D(k, x) ((mn_kv){.key = (k), .type = MN_KV_DBL, .v.d = (double)(x)})
#define MN_KV_B(k, x) ((mn_kv){.key = (k), .type = MN_KV_BOOL, .v.b = (bool)(x)})

/*
 * mn_log -- emit one event: mn_log(MN_LOG_INFO, "migration applied",
 *                                  MN_KV_I("version", 3), MN_KV_S("name", n));
 * Writes one line (ts, level, msg, then the fields) with a single write(2).
 */
#define mn_log(level, msg, ...)                                                                    \
  mn_log__emit((level), (msg), (const mn_kv[]){{0}, __VA_ARGS__} + 1,                              \
               sizeof((const mn_kv[]){{0}, __VA_ARGS__}) / sizeof(mn_kv) - 1)

void mn_log__emit(mn_log_level level, const char *msg, const mn_kv *kv, size_t nkv);

/* mn_log_error -- log err at level error with its code, message and detail. */
void mn_log_error(const char *msg, const mn_error *err);

/* mn_log_configure -- set the minimum level, the format and the output fd (-1: stderr). */
void mn_log_configure(mn_log_level level, mn_log_format format, int fd);

/* mn_log_level_parse / mn_log_format_parse -- from "info" / "json"; false if unknown. */
bool mn_log_level_parse(const char *s, mn_log_level *out /* OUT */);
bool mn_log_format_parse(const char *s, mn_log_format *out /* OUT */);
const char *mn_log_level_name(mn_log_level level);

/* ---------------------------------------------------------------- buffer */

/*
 * mn_buf -- a growable byte buffer with a hard cap (curl's dynbuf "toobig").
 * data is always NUL-terminated when not NULL, so text can be read in place.
 * The caller owns the struct (mn_buf_init / mn_buf_fini).
 */
typedef struct mn_buf {
  char *data;
  size_t len;
  size_t cap;
  size_t max; /* largest len allowed */
} mn_buf;

void mn_buf_init(mn_buf *b, size_t max);
void mn_buf_fini(mn_buf *b);
void mn_buf_reset(mn_buf *b); /* len = 0, memory kept */

/* Fails with MN_ERR_INPUT past max, MN_ERR_NOMEM when allocation fails; b is unchanged then. */
MN_NODISCARD mn_status mn_buf_append(mn_buf *b, const void *p, size_t n, mn_error *err);
MN_NODISCARD mn_status mn_buf_appendf(mn_buf *b, mn_error *err, const char *fmt, ...)
    MN_PRINTF(3, 4);
MN_NODISCARD mn_status mn_buf_reserve(mn_buf *b, size_t extra, mn_error *err);

/*
 * mn_buf_read_file -- read a whole file (at most b->max bytes) into b, replacing its content.
 * Fails with MN_ERR_IO (naming the file) or MN_ERR_INPUT when the file is larger than max.
 */
MN_NODISCARD mn_status mn_buf_read_file(mn_buf *b, const char *path, mn_error *err);

/* ---------------------------------------------------------------- Unicode (unicode.c) */

/* Properties of a code point, of Unicode MN_UC_VERSION (common/unicode_tables.h, written by
 * scripts/gen-unicode): the general categories L, N, M, White_Space (Oniguruma's and
 * Rust's \s), and whether NFC's quick check is not Yes (No or Maybe) */
enum { MN_UC_L = 1, MN_UC_N = 2, MN_UC_M = 4, MN_UC_SPACE = 8, MN_UC_NFC_QC = 16 };
/* mn_uc_props -- the MN_UC_* flags of cp (bits 0-7) and its canonical combining class
 * (bits 8-15); 0 past U+10FFFF.  Thread-safe: the table is built on the first call. */
uint32_t mn_uc_props(uint32_t cp);
const char *mn_uc_version(void); /* "14.0.0" */
/* mn_nfc_quick -- whether s[0..n) (valid UTF-8) is certainly NFC by the quick check (ASCII
 * and most text: true at a table lookup a character); false: run mn_nfc */
bool mn_nfc_quick(const char *s, size_t n);
/* mn_nfc -- the NFC of s[0..n) (valid UTF-8) appended to out; MN_ERR_NOMEM, or out's cap */
MN_NODISCARD mn_status mn_nfc(const char *s, size_t n, mn_buf *out, mn_error *err);

/* ---------------------------------------------------------------- scripts (script.c) */

/* mn_script_of -- the ISO 15924 code of the script letter cp belongs to ("Latn", "Thai",
 * "Hani", ...), or NULL when cp is not a letter of a script our languages use (digits,
 * punctuation, spaces, symbols and shared combining marks are not). A static string. */
const char *mn_script_of(uint32_t cp);
/* mn_script_in -- whether a letter of script `of` counts as written in `want`: the same
 * code, or a composite (Jpan: Hira, Kana, Hani; Kore: Hang, Hani; Hans and Hant: Hani) */
bool mn_script_in(const char *of, const char *want);
/* mn_script_share -- the share of the letters of s[0..n) (valid UTF-8) written in script
 * (0 when it has none); *letters, when not NULL: how many letters */
double mn_script_share(const char *s, size_t n, const char *script, size_t *letters);

/* ---------------------------------------------------------------- UTF-8 */

typedef enum {
  MN_UTF8_OK = 0,
  MN_UTF8_BAD_LEAD,  /* 0x80..0xC1 or 0xF5..0xFF as a first byte */
  MN_UTF8_TRUNCATED, /* sequence cut short by the end of the input */
  MN_UTF8_BAD_CONT,  /* a byte that should be 10xxxxxx is not */
  MN_UTF8_OVERLONG,  /* a code point encoded in more bytes than needed */
  MN_UTF8_SURROGATE, /* U+D800..U+DFFF */
  MN_UTF8_TOO_LARGE, /* above U+10FFFF */
} mn_utf8_problem;

/*
 * mn_utf8_check -- validate s[0..n).  Returns MN_UTF8_OK, or the problem with
 * *bad_offset set to the byte offset of the first byte of the faulty sequence.
 */
mn_utf8_problem mn_utf8_check(const void *s, size_t n, size_t *bad_offset /* OUT */);
const char *mn_utf8_problem_str(mn_utf8_problem p);

/* ---------------------------------------------------------------- text people write */

/* What mn_text_check finds (common/text.c says the rule and why). */
typedef enum {
  MN_TEXT_OK = 0,
  MN_TEXT_EMPTY,       /* no bytes */
  MN_TEXT_BLANK,       /* only white space */
  MN_TEXT_UTF8,        /* invalid UTF-8: mn_text_issue.utf8 says how */
  MN_TEXT_NUL,         /* a NUL byte */
  MN_TEXT_CONTROL,     /* C0 (not tab; newline, CR of CRLF when allowed), DEL, C1 */
  MN_TEXT_BOM,         /* U+FEFF: a leading one is stripped by the caller before the check */
  MN_TEXT_BIDI,        /* U+202A..U+202E, U+2066..U+2069 */
  MN_TEXT_REPLACEMENT, /* U+FFFD */
} mn_text_problem;

/* Help text (help.c): at most MN_HELP_WIDTH columns, so an 80-column terminal never wraps it.
 * mn_help_fill -- text filled: it starts at column col, later lines at column indent; its
 * line breaks are spaces, a blank line a paragraph; returns the column it ended at.
 * mn_help_item -- "  LEFT  text" with LEFT in a column cols wide (text on the next line when
 * LEFT is wider), text filled beside it.
 * mn_help_usage -- head, then synopsis broken only before an option ("--x X", "[--x X]"),
 * later lines aligned under its start. */
#define MN_HELP_WIDTH 79
int mn_help_fill(FILE *f, const char *text, int col, int indent);
void mn_help_item(FILE *f, const char *left, int cols, const char *text);
void mn_help_usage(FILE *f, const char *head, const char *synopsis);

/* A command of a program, for its shell completion: NAME [SUB], a one-line summary, its
 * arguments, its options (meta NULL: a flag; else what its value is called). */
typedef struct mn_comp_opt {
  const char *name, *meta, *help;
} mn_comp_opt;
typedef struct mn_comp_cmd {
  const char *name, *sub, *summary;
  const char *args; /* its synopsis' arguments: a choice ("bash|zsh") completes as its words */
  const mn_comp_opt *opts;
  size_t nopts;
} mn_comp_cmd;
/* mn_completion -- the completion script of prog for shell ("bash" or "zsh") on f: its
 * commands, subcommands and options (the globals with every command); -1 for another shell */
int mn_completion(FILE *f, const char *shell, const char *prog, const mn_comp_cmd *cmds, size_t n,
                  const mn_comp_opt *globals, size_t nglobals);

/* mn_roff -- s as roff text for a manual page: backslashes escaped, hyphens as minus signs
 * (options), a line starting with . or ' guarded (mnemoctl's and mnemo's pages) */
void mn_roff(FILE *f, const char *s);

/* flags of mn_text_check and mn_text_escape */
#define MN_TEXT_NEWLINE 1u /* check: "\n" allowed; escape: "\n" shown as a line break */
#define MN_TEXT_CRLF    2u /* check: "\r" allowed right before "\n" */
#define MN_TEXT_TAB     4u /* escape: a tab shown as it is (the check always allows tabs) */

typedef struct mn_text_issue {
  mn_text_problem problem;
  size_t offset;       /* byte of the offending character (or UTF-8 sequence) */
  uint32_t code_point; /* MN_TEXT_CONTROL, _BOM, _BIDI, _REPLACEMENT */
  mn_utf8_problem utf8;
} mn_text_issue;

/*
 * mn_text_check -- whether s[0..n) is acceptable text (see common/text.c for the rule).
 * Returns MN_TEXT_OK or the first problem, described in *out when out is not NULL.
 */
mn_text_problem mn_text_check(const char *s, size_t n, unsigned flags,
                              mn_text_issue *out /* OUT */);
const char *mn_text_problem_str(mn_text_problem p);
/* mn_text_describe -- "control character U+001B at byte 4", "NUL byte at byte 7", ... */
void mn_text_describe(const mn_text_issue *iss, char *out, size_t cap);
/* mn_text_is_space -- white space as the blank test counts it (ASCII and Unicode spaces) */
bool mn_text_is_space(uint32_t c);
/* mn_text_crlf_to_lf -- every "\r\n" of s[0..n) becomes "\n", in place; returns the new length */
size_t mn_text_crlf_to_lf(char *s, size_t n);

/*
 * mn_text_escape -- s[0..n) for a terminal, into out (cap bytes, always NUL-terminated when
 * cap > 0): C0 and C1 controls, DEL, bidirectional controls, BOM, U+2028/9 and invalid bytes
 * as "\n", "\r", "\t", "\x1b", "\u202e"; newlines and tabs kept when flags say so.  Stops
 * before a character that does not fit whole (*cut is set).  Returns the bytes of s used.
 */
size_t mn_text_escape(const char *s, size_t n, unsigned flags, char *out, size_t cap,
                      bool *cut /* OUT, may be NULL */);
/* mn_text_fput -- s[0..n) escaped as by mn_text_escape, whole, to f */
void mn_text_fput(FILE *f, const char *s, size_t n, unsigned flags);

/* ---------------------------------------------------------------- SHA-256 */

#define MN_SHA256_LEN     32
#define MN_SHA256_HEX_LEN 64

typedef struct mn_sha256 {
  void *ctx; /* EVP_MD_CTX */
} mn_sha256;

MN_NODISCARD mn_status mn_sha256_init(mn_sha256 *h, mn_error *err);
MN_NODISCARD mn_status mn_sha256_update(mn_sha256 *h, const void *p, size_t n, mn_error *err);
/* mn_sha256_final -- writes the digest and releases h (also on failure). */
MN_NODISCARD mn_status mn_sha256_final(mn_sha256 *h, uint8_t out[MN_SHA256_LEN], mn_error *err);
void mn_sha256_abort(mn_sha256 *h); /* release without a digest; NULL-safe ctx */
/* mn_sha256_hex -- one-shot digest of p[0..n) as 64 lower-case hex digits and a NUL. */
MN_NODISCARD mn_status mn_sha256_hex(const void *p, size_t n, char out[MN_SHA256_HEX_LEN + 1],
                                     mn_error *err);
void mn_hex_encode(const uint8_t *p, size_t n, char *out /* 2n+1 bytes */);
/* mn_edit_distance -- edit distance of a and b, a swap of neighbours counting one (optimal
 * string alignment; 64 when either is longer than 63) */
size_t mn_edit_distance(const char *a, const char *b);
/* mn_nearest -- the candidate nearest to s (cands[0..n)), or NULL when none is near enough to
 * be what was meant: at most a third of s's length apart, and 2 for short words */
const char *mn_nearest(const char *s, const char *const *cands, size_t n);

/* mn_hex_decode -- lower-case hex into at most max bytes: their number, or -1 when hex is not
 * an even number of lower-case hex digits or too long */
long mn_hex_decode(const char *hex, uint8_t *out, size_t max);

/* ---------------------------------------------------------------- atomic files */

/*
 * mn_atomic_file -- write a file so that readers see the old content or the
 * whole new content, never a part: data goes to "<path>.tmp.<pid>.<n>" in the
 * same folder, is fsynced, renamed over path, and the folder is fsynced.
 * Until commit, abort (or a crash) leaves path untouched.
 */
typedef struct mn_atomic_file mn_atomic_file;

/* On success *out owns the open temporary file; on failure *out is NULL. */
MN_NODISCARD mn_status mn_atomic_open(const char *path, unsigned mode,
                                      mn_atomic_file **out /* OUT */, mn_error *err);
MN_NODISCARD mn_status mn_atomic_write(mn_atomic_file *f, const void *p, size_t n, mn_error *err);
/* mn_atomic_commit -- fsync, rename, fsync the folder; frees f whatever the outcome. */
MN_NODISCARD mn_status mn_atomic_commit(mn_atomic_file *f, mn_error *err);
/* mn_atomic_abort -- remove the temporary file and free f; NULL-safe. */
void mn_atomic_abort(mn_atomic_file *f);

/* mn_write_file_atomic -- the whole sequence for one buffer. */
MN_NODISCARD mn_status mn_write_file_atomic(const char *path, const void *p, size_t n,
                                            unsigned mode, mn_error *err);

/* mn_fsync_parent -- make a rename into the folder of path durable (fsync the folder). */
MN_NODISCARD mn_status mn_fsync_parent(const char *path, mn_error *err);
/* mn_copy_file_atomic -- copy src (a symlink's target) to dst by the same sequence. */
MN_NODISCARD mn_status mn_copy_file_atomic(const char *src, const char *dst, unsigned mode,
                                           mn_error *err);

/* Test hook: called after the data is synced and before the rename (NULL: none). */
extern void (*mn_atomic__before_rename)(const char *tmp_path, const char *path);

/* ---------------------------------------------------------------- fault injection */

/*
 * Fault injection for tests (curl's torture mode): mn_fault_arm(kind, n) makes
 * the n-th call of that kind from now fail (1 = the next one).  0 disarms.
 * Only the I/O paths of this library consult it.
 */
typedef enum { MN_FAULT_ALLOC = 0, MN_FAULT_WRITE, MN_FAULT_FSYNC, MN_FAULT_KINDS } mn_fault_kind;
void mn_fault_arm(mn_fault_kind kind, long n);
bool mn_fault__hit(mn_fault_kind kind);

/* ---------------------------------------------------------------- JSONL (jsonl.c) */

/*
 * One JSON object a line, read a record at a time.  Blank lines (only white space) are
 * skipped; any other line that is not a JSON object is an MN_ERR_INPUT error naming
 * "file:line".  Strings may hold NUL (JSON_ALLOW_NUL: a string's length is exact and the
 * caller decides about NUL); an object with a key twice is refused.  The caller owns the
 * struct (mn_jsonl_open ... mn_jsonl_close).
 */
struct json_t;
typedef struct mn_jsonl {
  FILE *f;
  char name[256]; /* the file's name, in messages */
  char *line;
  size_t cap;
  int64_t line_no; /* the line of the record last returned */
  bool own;        /* f was opened here and is closed by mn_jsonl_close */
} mn_jsonl;

/* mn_jsonl_open -- r reads path; MN_ERR_IO (naming it) when it cannot be opened, and then
 * there is nothing to close */
mn_status mn_jsonl_open(mn_jsonl *r, const char *path, mn_error *err);
/* mn_jsonl_from -- r reads the open stream f (stdin, a pipe), called name in messages; f
 * stays the caller's */
void mn_jsonl_from(mn_jsonl *r, FILE *f, const char *name);
/* mn_jsonl_next -- the next object in *obj (the caller owns it), or *obj = NULL at the end
 * of the input.  MN_ERR_INPUT "file:line: not a JSON object (...)", MN_ERR_IO on a read
 * error; *obj is NULL whenever it fails. */
mn_status mn_jsonl_next(mn_jsonl *r, struct json_t **obj /* OUT */, mn_error *err);
/* mn_jsonl_fail -- err set to code with "file:line: " and the message, for a record the
 * caller finds wrong; returns code */
mn_status mn_jsonl_fail(const mn_jsonl *r, mn_error *err, mn_status code, const char *fmt, ...)
    MN_PRINTF(4, 5);
void mn_jsonl_close(mn_jsonl *r);

/* mn_json_str -- the value of v when it is a string with no NUL inside, else NULL: for codes
 * and names read from JSONL, where a NUL would silently cut the value short ("sw\u0000h"
 * read as "sw") */
const char *mn_json_str(const struct json_t *v);

/* mn_jsonl_each -- fn for every object of the file at path, in order, until fn fails (its
 * status is returned); the object is borrowed for the call */
typedef mn_status (*mn_jsonl_fn)(struct json_t *obj, const mn_jsonl *r, void *ctx, mn_error *err);
mn_status mn_jsonl_each(const char *path, mn_jsonl_fn fn, void *ctx, mn_error *err);

/* ---------------------------------------------------------------- little-endian bytes
 * The on-disk formats (checkpoints, shards, replay stores) are little-endian whatever the
 * host; these put and get one integer at p. */
static inline void mn_put_le32(uint8_t *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static inline void mn_put_le64(uint8_t *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t mn_get_le32(const uint8_t *p)
{
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}
static inline uint64_t mn_get_le64(const uint8_t *p)
{
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

/* ---------------------------------------------------------------- small helpers */

/* mn_strdup -- strdup that reports failure as MN_ERR_NOMEM; *out owned by the caller. */
MN_NODISCARD mn_status mn_strdup(const char *s, char **out /* OUT */, mn_error *err);

/* mn_splitmix64 -- the next number of a splitmix64 sequence (Steele et al.); the state is
 * one 64-bit number, so it is saved and restored trivially. */
uint64_t mn_splitmix64(uint64_t *state);

/* mn_lang_code_valid -- a language code as tags, reports and configs use it: 2-7 of a-z and
 * _ (ISO 639-3 and its variants); NULL: false. */
bool mn_lang_code_valid(const char *code);

/*
 * mn_lang_list_next -- the next entry of a comma-separated list of language codes, each
 * with an optional ":NUMBER" ("kat:0.03,swh"), from *p (advanced past it).  code receives
 * the code, *value the number (NAN when there is none), *entry and *len the entry's text
 * (for messages).  Returns 1 for an entry, 0 at the end (NULL or ""), -1 for a malformed
 * entry (an invalid code, a number that is not one, an empty entry).
 */
int mn_lang_list_next(const char **p, char code[8], double *value, const char **entry, size_t *len);

/* mn_parse_i64 -- whole-string decimal integer; false on junk or overflow. */
bool mn_parse_i64(const char *s, int64_t *out /* OUT */);

/*
 * mn_split_heldout -- the held-out rule of the data plane: a document is held out when
 * the first 8 bytes of its SHA-256, big-endian, are below fraction * 2^64.  Ingest
 * stores it; shards built without the database apply the same rule.
 */
bool mn_split_heldout(const uint8_t sha[MN_SHA256_LEN], double fraction);

/* mn_monotonic_ms / mn_wall_iso8601 -- clocks for durations and log timestamps. */
double mn_monotonic_ms(void);
void mn_wall_iso8601(char out[32]);

/*
 * mn_progress -- one progress line on a terminal (progress.c): the caller's text, the
 * percentage of done in total and, after a few seconds of measurement, an ETA, rewritten in
 * place at most four times a second.  For people only: the caller turns it on (out is
 * stderr when stderr is a terminal and --json was not given) or off (out NULL: every call
 * does nothing).  The caller owns the struct; nothing is allocated.
 */
typedef struct mn_progress {
  FILE *out;       /* NULL: off */
  int cols;        /* the terminal's width: the line never wraps */
  bool started;    /* t0 and done0 are set */
  bool drawn;      /* a line is showing, not yet ended */
  double t0, last; /* the first update and the last line drawn (ms) */
  double done0;    /* done at the first update: the rate is of this run's work only */
  bool force;      /* the next update draws whatever the time (its caller's last) */
} mn_progress;

void mn_progress_init(mn_progress *p, FILE *out);
/* mn_progress_update -- redraw the line as fmt, then the percentage of done in total (none
 * when total <= 0) and the ETA; drawn at the first update, at the last (done >= total) and
 * otherwise at most every 250 ms */
void mn_progress_update(mn_progress *p, double done, double total, const char *fmt, ...)
    MN_PRINTF(4, 5);
/* mn_progress_end -- end a drawn line with a newline (the next update starts a new one,
 * its ETA measured afresh); nothing when none is showing */
void mn_progress_end(mn_progress *p);

#ifdef __cplusplus
}
#endif
#endif /* MNEMO_COMMON_H */
