/*
 * checkpoint.c -- model weights and optimizer state as safetensors files.
 *
 * safetensors: 8 bytes little-endian N, N bytes of JSON (one entry per tensor
 * with dtype, shape and data_offsets relative to the end of the header, plus
 * "__metadata__", string to string), then the raw little-endian data.  The
 * header is padded with spaces to a multiple of 8 so the data is aligned.
 * Our tensors are written in layout order, so the data is the parameter
 * buffer as it is: one write, one read.
 *
 * Every load verifies the header, each tensor's dtype, shape and offsets,
 * the size of the data and its SHA-256, and refuses anything else with a
 * message naming the file and the problem (MN_ERR_CORRUPT).
 */
#include "trainer/trainer_int.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FORMAT        "mnemo-gpt"
#define OPT_FORMAT    "mnemo-gpt-optimizer"
#define FISHER_FORMAT "mnemo-gpt-fisher"
#define MAX_HEADER    (64u << 20)

static bool little_endian(void)
{
  const uint16_t one = 1;
  return *(const uint8_t *)&one == 1;
}

/* ---------------------------------------------------------------- element types */

const char *trainer__st_dtype_name(st_dtype d)
{
  return d == ST_BF16 ? "BF16" : d == ST_F16 ? "F16" : "F32";
}

static uint16_t f32_to_f16(uint32_t x)
{
  uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7FFFFFFF;
  if (ax >= 0x7F800000) return (uint16_t)(sign | (ax > 0x7F800000 ? 0x7E00 : 0x7C00));
  if (ax >= 0x477FF000) return (uint16_t)(sign | 0x7C00); /* 65520 and above round to inf */
  if (ax < 0x38800000) {                                  /* below 2^-14: a subnormal */
    if (ax < 0x33000000) return (uint16_t)sign;           /* at most 2^-25: zero (even) */
    uint32_t e = ax >> 23, mant = (ax & 0x7FFFFF) | 0x800000;
    uint32_t shift = 126 - e; /* the value over 2^-24, in units of the last place */
    uint32_t r = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1))) r++;
    return (uint16_t)(sign | r);
  }
  uint32_t r = ax - 0x38000000; /* exponent rebiased from 127 to 15 */
  r += 0xFFF + ((r >> 13) & 1);
  return (uint16_t)(sign | (r >> 13));
}

uint16_t trainer__f32_to_16(st_dtype d, float f)
{
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  if (d == ST_F16) return f32_to_f16(x);
  if ((x & 0x7FFFFFFF) > 0x7F800000) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
  return (uint16_t)((x + 0x7FFF + ((x >> 16) & 1)) >> 16);
}

float trainer__16_to_f32(st_dtype d, uint16_t h)
{
  uint32_t x;
  if (d == ST_BF16) {
    x = (uint32_t)h << 16;
  } else {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1F, mant = h & 0x3FF;
    if (e == 0) { /* zero or a subnormal: mant x 2^-24, exact in float */
      float v = ldexpf((float)mant, -24);
      memcpy(&x, &v, sizeof x);
      x |= sign;
    } else if (e == 31) {
      x = sign | 0x7F800000 | (mant << 13);
    } else {
      x = sign | ((e + 112) << 23) | (mant << 13);
    }
  }
  float f;
  memcpy(&f, &x, sizeof f);
  return f;
}

/* ---------------------------------------------------------------- writing */

mn_status ckpt__write_st(const char *path, const st_tensor *t, int n, json_t *meta, mn_error *err)
{
  mn_status rc = MN_OK;
  json_t *h = json_object();
  char *text = NULL;
  mn_atomic_file *f = NULL;
  if (!little_endian())
    return mn_error_set(err, MN_ERR_IO, "cannot write \"%s\": big-endian host", path);
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    json_t *shape = json_array();
    for (int d = 0; d < t[i].ndim; d++)
      json_array_append_new(shape, json_integer((json_int_t)t[i].shape[d]));
    size_t bytes = t[i].count * (t[i].dtype == ST_F32 ? sizeof(float) : sizeof(uint16_t));
    json_object_set_new(h, t[i].name,
                        json_pack("{s:s, s:o, s:[I,I]}", "dtype",
                                  trainer__st_dtype_name(t[i].dtype), "shape", shape,
                                  "data_offsets", (json_int_t)off, (json_int_t)(off + bytes)));
    off += bytes;
  }
  json_object_set(h, "__metadata__", meta);
  text = json_dumps(h, JSON_COMPACT);
  if (!text) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory writing the header of \"%s\"", path);
    goto out;
  }
  size_t hlen = strlen(text), padded = (hlen + 7) / 8 * 8;
  uint8_t len8[8];
  mn_put_le64(len8, (uint64_t)padded);
  if ((rc = mn_atomic_open(path, 0644, &f, err)) != MN_OK) goto out;
  if ((rc = mn_atomic_write(f, len8, 8, err)) != MN_OK) goto out;
  if ((rc = mn_atomic_write(f, text, hlen, err)) != MN_OK) goto out;
  if ((rc = mn_atomic_write(f, "       ", padded - hlen, err)) != MN_OK) goto out;
  for (int i = 0; i < n && rc == MN_OK; i++) {
    if (t[i].dtype == ST_F32) {
      rc = mn_atomic_write(f, t[i].data, t[i].count * sizeof(float), err);
      continue;
    }
    uint16_t chunk[8192]; /* 16-bit types: rounded a chunk at a time */
    for (size_t j = 0; j < t[i].count && rc == MN_OK; j += 8192) {
      size_t k = t[i].count - j < 8192 ? t[i].count - j : 8192;
      for (size_t e = 0; e < k; e++)
        chunk[e] = trainer__f32_to_16(t[i].dtype, t[i].data[j + e]); /* little-endian host */
      rc = mn_atomic_write(f, chunk, k * sizeof *chunk, err);
    }
  }
  if (rc != MN_OK) goto out;
  rc = mn_atomic_commit(f, err);
  f = NULL;
out:
  mn_atomic_abort(f);
  free(text);
  json_decref(h);
  return rc;
}

/* canonical -- the metadata fields the checksum covers, in one string (*out malloc'd). */
static mn_status canonical(const char *cfg, const char *tags, const char *step, const char *lineage,
                           const char *tok_sha, const char *origin, char **out, mn_error *err)
{
  *out = NULL;
  if (!cfg || !tags || !step || !lineage) return MN_OK; /* parse_meta reports what is missing */
  size_t n = strlen(cfg) + strlen(tags) + strlen(step) + strlen(lineage) +
             (origin ? strlen(origin) : 0) + 180;
  *out = malloc(n);
  if (!*out) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  int k = snprintf(*out, n, "mnemo-gpt\nconfig %s\ntags %s\nstep %s\nlineage %s\n", cfg, tags, step,
                   lineage);
  if (tok_sha) k += snprintf(*out + k, n - (size_t)k, "tokenizer %.64s\n", tok_sha);
  /* only when there is one: the checksums of checkpoints made before origins stay valid */
  if (origin && *origin) snprintf(*out + k, n - (size_t)k, "origin %s\n", origin);
  return MN_OK;
}

/* sha_of -- SHA-256 of prefix (the metadata it vouches for; may be NULL) and the tensors. */
static mn_status sha_of(const char *prefix, const st_tensor *t, int n,
                        char hex[MN_SHA256_HEX_LEN + 1], mn_error *err)
{
  mn_sha256 h;
  uint8_t d[MN_SHA256_LEN];
  mn_status rc = mn_sha256_init(&h, err);
  if (rc == MN_OK && prefix) rc = mn_sha256_update(&h, prefix, strlen(prefix), err);
  for (int i = 0; i < n && rc == MN_OK; i++)
    rc = mn_sha256_update(&h, t[i].data, t[i].count * sizeof(float), err);
  if (rc == MN_OK)
    rc = mn_sha256_final(&h, d, err);
  else
    mn_sha256_abort(&h);
  if (rc == MN_OK) mn_hex_encode(d, sizeof d, hex);
  return rc;
}

static json_t *config_json(const gpt_config *c)
{
  json_t *j = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i}", "max_seq_len", c->max_seq_len,
                        "vocab_size", c->vocab_size, "padded_vocab", c->padded_vocab, "n_layer",
                        c->n_layer, "n_head", c->n_head, "n_embd", c->n_embd);
  if (!j || c->arch == GPT_ARCH_GPT2) return j; /* as every checkpoint before families */
  json_t *f = json_pack("{s:s, s:i, s:i, s:b, s:f, s:f}", "arch", gpt_arch_name(c->arch),
                        "n_kv_head", c->n_kv_head, "n_ff", c->n_ff, "untied", c->untied, "norm_eps",
                        (double)c->norm_eps, "rope_theta", c->rope_theta);
  if (f && c->rope_factor != 0.0)
    json_object_set_new(f, "rope_scaling",
                        json_pack("{s:f, s:f, s:f, s:i}", "factor", c->rope_factor,
                                  "low_freq_factor", c->rope_low_freq, "high_freq_factor",
                                  c->rope_high_freq, "original_max_position_embeddings",
                                  c->rope_orig_max));
  if (!f || json_object_update(j, f) != 0) json_decref(j), j = NULL;
  json_decref(f);
  return j;
}

/* config_parse -- a config_json object into g; false when malformed (the check comes after) */
static bool config_parse(json_t *c, gpt_config *g)
{
  const char *arch = "gpt2";
  int untied = 0;
  double eps = 0;
  json_t *scaling = NULL;
  if (!c || json_unpack(c, "{s:i, s:i, s:i, s:i, s:i, s:i, s?s, s?i, s?i, s?b, s?F, s?F, s?o}",
                        "max_seq_len", &g->max_seq_len, "vocab_size", &g->vocab_size,
                        "padded_vocab", &g->padded_vocab, "n_layer", &g->n_layer, "n_head",
                        &g->n_head, "n_embd", &g->n_embd, "arch", &arch, "n_kv_head", &g->n_kv_head,
                        "n_ff", &g->n_ff, "untied", &untied, "norm_eps", &eps, "rope_theta",
                        &g->rope_theta, "rope_scaling", &scaling) != 0)
    return false;
  g->untied = untied;
  g->norm_eps = (float)eps;
  g->arch = GPT_ARCH_COUNT;
  for (int a = 0; a < GPT_ARCH_COUNT; a++)
    if (strcmp(arch, gpt_arch_name((gpt_arch)a)) == 0) g->arch = (gpt_arch)a;
  if (scaling &&
      json_unpack(scaling, "{s:F, s:F, s:F, s:i}", "factor", &g->rope_factor, "low_freq_factor",
                  &g->rope_low_freq, "high_freq_factor", &g->rope_high_freq,
                  "original_max_position_embeddings", &g->rope_orig_max) != 0)
    return false;
  return g->arch != GPT_ARCH_COUNT;
}

/*
 * config_tensors -- the tensors of configuration c in layout order, with their shapes; each
 * data pointer is base + its offset (base may be NULL: shapes only, nothing to read into).
 * c must have passed gpt_config_check, which bounds the count (2 + 12 L + 2, L <= 256).
 * On MN_OK *t and *names (which backs the names) are the caller's to free.
 */
static mn_status config_tensors(const gpt_config *c, const float *base, st_tensor **t,
                                char (**names)[64], const char *path, mn_error *err)
{
  int n = gpt_num_tensors(c);
  *t = calloc((size_t)n, sizeof **t);
  *names = calloc((size_t)n, 64);
  if (!*t || !*names) {
    free(*t), free(*names);
    *t = NULL, *names = NULL;
    return mn_error_set(err, MN_ERR_NOMEM, "out of memory for the tensors of \"%s\"", path);
  }
  for (int i = 0; i < n; i++) {
    st_tensor *x = &(*t)[i];
    size_t off;
    gpt_tensor_info(c, i, (*names)[i], x->shape, &x->ndim, &off);
    x->name = (*names)[i];
    x->count = x->shape[0] * (x->ndim == 2 ? x->shape[1] : 1);
    x->data = base ? base + off : NULL;
  }
  return MN_OK;
}

/* model_tensors -- the model's tensors, each a view into its parameters (config_tensors) */
static mn_status model_tensors(gpt *m, st_tensor **t, char (**names)[64], const char *path,
                               mn_error *err)
{
  return config_tensors(gpt_get_config(m), gpt_params(m), t, names, path, err);
}

mn_status ckpt_save(const char *path, gpt *m, ckpt_meta *meta, mn_error *err)
{
  const gpt_config *c = gpt_get_config(m);
  int n = gpt_num_tensors(c);
  st_tensor *t = NULL;
  char(*names)[64] = NULL;
  char *tags = NULL, *cfg = NULL, *canon = NULL, *tok_json = NULL;
  json_t *meta_j = NULL, *cj = NULL;
  mn_status rc = model_tensors(m, &t, &names, path, err);
  if (rc != MN_OK) return rc;
  if ((rc = tok_tags_to_json(&meta->tags, &tags, err)) != MN_OK) goto out;
  /* a BPE model carries its tokenizer; the byte tokenizer is implied by its absence */
  bool bpe = meta->tok && strcmp(tok_kind(meta->tok), "bpe") == 0;
  if (bpe && (rc = trainer__tok_canonical(meta->tok, &tok_json, err)) != MN_OK) goto out;
  if (meta->tok)
    snprintf(meta->tok_sha256, sizeof meta->tok_sha256, "%s", tok_sha256(meta->tok));
  else if ((rc = trainer__bytes_sha256(meta->tok_sha256, err)) != MN_OK)
    goto out;
  meta->config = *c;
  cj = config_json(c);
  cfg = json_dumps(cj, JSON_COMPACT | JSON_SORT_KEYS);
  char step[32];
  snprintf(step, sizeof step, "%lld", (long long)meta->step);
  /* the checksum vouches for what the metadata says of the weights, not only the weights */
  if (!cfg ||
      (rc = canonical(cfg, tags, step, meta->lineage[0] ? meta->lineage : "{}",
                      bpe ? meta->tok_sha256 : NULL, meta->origin, &canon, err)) != MN_OK ||
      !canon) {
    rc = rc != MN_OK ? rc : mn_error_set(err, MN_ERR_NOMEM, "out of memory saving \"%s\"", path);
    goto out;
  }
  if ((rc = sha_of(canon, t, n, meta->sha256, err)) != MN_OK) goto out;
  meta_j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "format", FORMAT, "version", "1",
                     "config", cfg ? cfg : "", "tags", tags, "lineage",
                     meta->lineage[0] ? meta->lineage : "{}", "step", step, "sha256", meta->sha256);
  if (meta_j && bpe &&
      (json_object_set_new(meta_j, "tokenizer", json_string(tok_json)) != 0 ||
       json_object_set_new(meta_j, "tokenizer_sha256", json_string(meta->tok_sha256)) != 0)) {
    json_decref(meta_j);
    meta_j = NULL;
  }
  if (meta_j && meta->origin[0] &&
      json_object_set_new(meta_j, "origin", json_string(meta->origin)) != 0) {
    json_decref(meta_j);
    meta_j = NULL;
  }
  if (!cfg || !meta_j) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory saving \"%s\"", path);
    goto out;
  }
  rc = ckpt__write_st(path, t, n, meta_j, err);
out:
  free(tok_json);
  json_decref(meta_j);
  json_decref(cj);
  free(canon);
  free(cfg);
  free(tags);
  free(names);
  free(t);
  return rc;
}

/* opt_prefix -- what the optimizer file's checksum covers besides the moments: where they
 * start, the step, the data sampler's state and the drift controller's (a file without "from",
 * of an older version, covers the moments alone) */
static char *opt_prefix(const char *from, const char *step, const char *rng, const char *adapt)
{
  size_t n = strlen(from) + strlen(step) + strlen(rng) + (adapt ? strlen(adapt) + 1 : 0) + 3;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s\n%s\n%s%s%s", from, step, rng, adapt ? "\n" : "", adapt ? adapt : "");
  return p;
}

/* The moments of the parameters from `from` on (gpt_state_from: the part that has trained;
 * the rest are zero), "from" in the metadata and under the checksum; a file without it holds
 * them all. */
mn_status ckpt_save_opt(const char *path, gpt *m, const ckpt_opt_state *st, mn_error *err)
{
  size_t np = gpt_params_count(m);
  float *mm = gpt_adam_m(m), *vv = gpt_adam_v(m);
  if (!mm || !vv) {
    mn_status rc = gpt_sync(m, err);
    return rc != MN_OK ? rc : mn_error_set(err, MN_ERR_NOMEM, "out of memory saving \"%s\"", path);
  }
  size_t from = gpt_state_from(m), n = np - from;
  st_tensor t[2] = {{"m", {n, 0}, 1, mm, n, ST_F32}, {"v", {n, 0}, 1, vv, n, ST_F32}};
  char sha[MN_SHA256_HEX_LEN + 1], step[32], rng[32], from_s[32];
  snprintf(from_s, sizeof from_s, "%zu", from);
  snprintf(step, sizeof step, "%lld", (long long)st->step);
  snprintf(rng, sizeof rng, "%llu", (unsigned long long)st->rng);
  char *prefix = opt_prefix(from_s, step, rng, st->adapt);
  mn_status rc = prefix ? sha_of(prefix, t, 2, sha, err)
                        : mn_error_set(err, MN_ERR_NOMEM, "out of memory saving \"%s\"", path);
  free(prefix);
  if (rc != MN_OK) return rc;
  json_t *meta = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "format", OPT_FORMAT, "step",
                           step, "rng", rng, "weights_sha256", st->weights_sha256, "sha256", sha,
                           "from", from_s, "version", "1");
  if (meta && st->adapt) json_object_set_new(meta, "adapt", json_string(st->adapt));
  if (!meta) return mn_error_set(err, MN_ERR_NOMEM, "out of memory saving \"%s\"", path);
  rc = ckpt__write_st(path, t, 2, meta, err);
  json_decref(meta);
  return rc;
}

/* ---------------------------------------------------------------- reading */

typedef struct st_file {
  int fd;
  const char *path;
  json_t *header;
  json_t *meta; /* borrowed from header */
  uint64_t data_start, data_len;
} st_file;

static void st_close(st_file *f)
{
  if (f->fd >= 0) close(f->fd);
  json_decref(f->header);
  f->fd = -1;
  f->header = NULL;
}

static mn_status corrupt(const char *path, mn_error *err, const char *fmt, ...) MN_PRINTF(3, 4);

static mn_status corrupt(const char *path, mn_error *err, const char *fmt, ...)
{
  char why[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  return mn_error_set(err, MN_ERR_CORRUPT, "cannot load \"%s\": %s", path, why);
}

static mn_status read_full(int fd, void *p, size_t n, const char *path, mn_error *err)
{
  char *c = p;
  while (n > 0) {
    ssize_t got = read(fd, c, n > (1u << 30) ? (1u << 30) : n);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0)
      return mn_error_set(err, MN_ERR_IO, "could not read \"%s\": %s", path, strerror(errno));
    if (got == 0) return corrupt(path, err, "the file ends early");
    c += got;
    n -= (size_t)got;
  }
  return MN_OK;
}

mn_status trainer__open_regular(const char *path, int *fd, mn_error *err)
{
  /* non-blocking: a FIFO in the file's place must not hang the reader (it is refused) */
  *fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  struct stat st;
  if (*fd < 0 || fstat(*fd, &st) != 0) {
    int e = errno;
    if (*fd >= 0) close(*fd);
    *fd = -1;
    return mn_error_set(err, MN_ERR_IO, "could not open \"%s\": %s", path, strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    close(*fd);
    *fd = -1;
    return mn_error_set(err, MN_ERR_INPUT, "\"%s\" is not a regular file", path);
  }
  return MN_OK;
}

static mn_status st_open(const char *path, const char *format, st_file *f, mn_error *err)
{
  memset(f, 0, sizeof *f);
  f->path = path;
  mn_status orc = trainer__open_regular(path, &f->fd, err);
  if (orc != MN_OK) return orc;
  struct stat sb;
  uint8_t len8[8];
  mn_status rc = MN_OK;
  char *text = NULL;
  if (fstat(f->fd, &sb) != 0 || sb.st_size < 8) {
    rc = corrupt(path, err, "the file is %lld bytes, too short for a safetensors header",
                 (long long)sb.st_size);
    goto fail;
  }
  if ((rc = read_full(f->fd, len8, 8, path, err)) != MN_OK) goto fail;
  uint64_t hlen = mn_get_le64(len8);
  if (hlen < 2 || hlen > MAX_HEADER || hlen > (uint64_t)sb.st_size - 8) {
    rc = corrupt(path, err, "header length %llu does not fit a file of %lld bytes",
                 (unsigned long long)hlen, (long long)sb.st_size);
    goto fail;
  }
  text = malloc(hlen + 1);
  if (!text) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory reading \"%s\"", path);
    goto fail;
  }
  if ((rc = read_full(f->fd, text, hlen, path, err)) != MN_OK) goto fail;
  json_error_t je;
  f->header = json_loadb(text, hlen, 0, &je);
  if (!json_is_object(f->header)) {
    rc = corrupt(path, err, "the header is not a JSON object (%s)", je.text);
    goto fail;
  }
  f->meta = json_object_get(f->header, "__metadata__");
  const char *fmt = json_string_value(json_object_get(f->meta, "format"));
  if (!fmt || strcmp(fmt, format) != 0) {
    rc = corrupt(path, err, "not a %s file (format \"%s\")", format, fmt ? fmt : "none");
    goto fail;
  }
  f->data_start = 8 + hlen;
  f->data_len = (uint64_t)sb.st_size - f->data_start;
  free(text);
  return MN_OK;
fail:
  free(text);
  st_close(f);
  return rc;
}

static const char *meta_str(const st_file *f, const char *key)
{
  return json_string_value(json_object_get(f->meta, key));
}

/* check_tensors -- the header lists exactly t[0..n), F32, with these shapes, back to back. */
static mn_status check_tensors(const st_file *f, const st_tensor *t, int n, mn_error *err)
{
  uint64_t off = 0;
  for (int i = 0; i < n; i++) {
    json_t *e = json_object_get(f->header, t[i].name);
    if (!e) return corrupt(f->path, err, "tensor \"%s\" is missing", t[i].name);
    const char *dtype = json_string_value(json_object_get(e, "dtype"));
    if (!dtype || strcmp(dtype, "F32") != 0)
      return corrupt(f->path, err, "tensor \"%s\" has dtype %s, not F32", t[i].name,
                     dtype ? dtype : "(none)");
    json_t *shape = json_object_get(e, "shape");
    bool ok = json_is_array(shape) && (int)json_array_size(shape) == t[i].ndim;
    for (int d = 0; ok && d < t[i].ndim; d++)
      ok = json_integer_value(json_array_get(shape, (size_t)d)) == (json_int_t)t[i].shape[d];
    if (!ok) {
      char *had = json_dumps(shape, JSON_COMPACT | JSON_ENCODE_ANY), want[64];
      if (t[i].ndim == 2)
        snprintf(want, sizeof want, "[%zu,%zu]", t[i].shape[0], t[i].shape[1]);
      else
        snprintf(want, sizeof want, "[%zu]", t[i].shape[0]);
      mn_status rc = corrupt(f->path, err,
                             "tensor \"%s\" has the wrong shape for this model: %.40s, "
                             "expected %s",
                             t[i].name, had ? had : "none", want);
      free(had);
      return rc;
    }
    json_t *offs = json_object_get(e, "data_offsets");
    uint64_t b = (uint64_t)json_integer_value(json_array_get(offs, 0));
    uint64_t en = (uint64_t)json_integer_value(json_array_get(offs, 1));
    if (b != off || en != off + t[i].count * sizeof(float))
      return corrupt(f->path, err, "tensor \"%s\" is not where the layout puts it", t[i].name);
    off = en;
  }
  if (json_object_size(f->header) != (size_t)n + 1)
    return corrupt(f->path, err, "the header lists %zu tensors, the model has %d",
                   json_object_size(f->header) - 1, n);
  if (f->data_len != off)
    return corrupt(f->path, err, "%s: %llu bytes of tensor data, expected %llu",
                   f->data_len < off ? "truncated" : "trailing bytes",
                   (unsigned long long)f->data_len, (unsigned long long)off);
  return MN_OK;
}

/* read_tensors -- the data into t[i].data (cast away const: these are destinations) and check its
 * hash. */
static mn_status read_tensors(const st_file *f, const st_tensor *t, int n, const char *prefix,
                              const char *want_sha, mn_error *err)
{
  mn_status rc = MN_OK;
  if (lseek(f->fd, (off_t)f->data_start, SEEK_SET) < 0)
    return mn_error_set(err, MN_ERR_IO, "could not seek in \"%s\": %s", f->path, strerror(errno));
  for (int i = 0; i < n && rc == MN_OK; i++)
    rc = read_full(f->fd, (void *)(uintptr_t)t[i].data, t[i].count * sizeof(float), f->path, err);
  if (rc != MN_OK) return rc;
  char sha[MN_SHA256_HEX_LEN + 1];
  if ((rc = sha_of(prefix, t, n, sha, err)) != MN_OK) return rc;
  if (!want_sha || strcmp(sha, want_sha) != 0)
    return corrupt(f->path, err,
                   "the tensor data does not match its SHA-256 (the file is corrupted)");
  return MN_OK;
}

static mn_status parse_meta(const st_file *f, ckpt_meta *meta, mn_error *err)
{
  memset(meta, 0, sizeof *meta);
  const char *cfg = meta_str(f, "config"), *tags = meta_str(f, "tags"),
             *sha = meta_str(f, "sha256");
  const char *step = meta_str(f, "step"), *lineage = meta_str(f, "lineage");
  if (!cfg || !tags || !sha || !step || strlen(sha) != MN_SHA256_HEX_LEN)
    return corrupt(f->path, err, "the metadata lacks config, tags, step or sha256");
  json_error_t je;
  json_t *c = json_loads(cfg, 0, &je);
  gpt_config *g = &meta->config;
  bool ok = config_parse(c, g);
  json_decref(c);
  if (!ok) return corrupt(f->path, err, "the model config in the metadata is malformed");
  mn_error e2;
  if (gpt_config_check(g, &e2) != MN_OK) return corrupt(f->path, err, "%s", e2.msg);
  if (tok_tags_from_json(tags, &meta->tags, &e2) != MN_OK)
    return corrupt(f->path, err, "%s", e2.msg);
  for (int i = 0; i < meta->tags.n; i++)
    if (meta->tags.t[i].id >= g->vocab_size)
      return corrupt(f->path, err, "tag %d of \"%s\" is outside the vocabulary of %d",
                     meta->tags.t[i].id, meta->tags.t[i].code, g->vocab_size);
  int64_t s;
  if (!mn_parse_i64(step, &s) || s < 0) return corrupt(f->path, err, "bad step \"%.20s\"", step);
  meta->step = s;
  snprintf(meta->lineage, sizeof meta->lineage, "%s", lineage ? lineage : "{}");
  const char *origin = meta_str(f, "origin");
  if (origin && strlen(origin) >= sizeof meta->origin)
    return corrupt(f->path, err, "its origin is over %zu bytes", sizeof meta->origin - 1);
  snprintf(meta->origin, sizeof meta->origin, "%s", origin ? origin : "");
  snprintf(meta->sha256, sizeof meta->sha256, "%s", sha);
  const char *tsha = meta_str(f, "tokenizer_sha256");
  if (!tsha != !meta_str(f, "tokenizer") || (tsha && strlen(tsha) != MN_SHA256_HEX_LEN))
    return corrupt(f->path, err,
                   "the metadata has a tokenizer without its SHA-256, or the reverse");
  if (tsha) {
    snprintf(meta->tok_sha256, sizeof meta->tok_sha256, "%s", tsha);
    return MN_OK;
  }
  return trainer__bytes_sha256(meta->tok_sha256, err);
}

/*
 * ckpt_read_meta -- the metadata, and only when the file can hold the model it describes:
 * callers size a model (gigabytes) by meta->config, so the claim is checked against the
 * file's size and its tensor table here, before anyone allocates by it.
 */
mn_status ckpt_read_meta(const char *path, ckpt_meta *meta, mn_error *err)
{
  st_file f;
  st_tensor *t = NULL;
  char(*names)[64] = NULL;
  mn_status rc = st_open(path, FORMAT, &f, err);
  if (rc != MN_OK) return rc;
  if ((rc = parse_meta(&f, meta, err)) != MN_OK) goto out;
  /* gpt_config_check bounded the shape: the count cannot wrap (under 2^42 floats) */
  const gpt_config *c = &meta->config;
  uint64_t want = (uint64_t)gpt_num_params(c) * sizeof(float);
  if (f.data_len != want) {
    rc = corrupt(path, err,
                 "its metadata describes %d layers of width %d (vocab %d, %d positions): %llu "
                 "bytes of tensors, but the file holds %llu",
                 c->n_layer, c->n_embd, c->padded_vocab, c->max_seq_len, (unsigned long long)want,
                 (unsigned long long)f.data_len);
    goto out;
  }
  if ((rc = config_tensors(c, NULL, &t, &names, path, err)) != MN_OK) goto out;
  rc = check_tensors(&f, t, gpt_num_tensors(c), err);
out:
  free(t);
  free(names);
  st_close(&f);
  if (rc != MN_OK) memset(meta, 0, sizeof *meta);
  return rc;
}

mn_status ckpt__read_tokenizer(const char *path, char **json, tok_tags *tags,
                               char sha[MN_SHA256_HEX_LEN + 1], mn_error *err)
{
  st_file f;
  ckpt_meta *meta = malloc(sizeof *meta);
  *json = NULL;
  if (!meta) return mn_error_set(err, MN_ERR_NOMEM, "out of memory reading \"%s\"", path);
  mn_status rc = st_open(path, FORMAT, &f, err);
  if (rc == MN_OK) {
    rc = parse_meta(&f, meta, err);
    const char *text = meta_str(&f, "tokenizer");
    if (rc == MN_OK && text && !(*json = strdup(text)))
      rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory reading \"%s\"", path);
    if (rc == MN_OK) *tags = meta->tags;
    if (rc == MN_OK) memcpy(sha, meta->tok_sha256, sizeof meta->tok_sha256);
    st_close(&f);
  }
  free(meta);
  return rc;
}

mn_status ckpt_load(const char *path, gpt *m, ckpt_meta *meta, mn_error *err)
{
  st_file f;
  const gpt_config *c = gpt_get_config(m);
  int n = gpt_num_tensors(c);
  st_tensor *t = NULL;
  char(*names)[64] = NULL;
  mn_status rc = model_tensors(m, &t, &names, path, err);
  if (rc != MN_OK) return rc;
  if ((rc = st_open(path, FORMAT, &f, err)) != MN_OK) goto out_free;
  if ((rc = parse_meta(&f, meta, err)) != MN_OK) goto out;
  if (!gpt_config_equal(&meta->config, c)) {
    rc = corrupt(path, err,
                 "its model (%d layers, width %d, %d heads, %d positions, vocab %d/%d) "
                 "is not this one",
                 meta->config.n_layer, meta->config.n_embd, meta->config.n_head,
                 meta->config.max_seq_len, meta->config.vocab_size, meta->config.padded_vocab);
    goto out;
  }
  if ((rc = check_tensors(&f, t, n, err)) != MN_OK) goto out;
  char *canon = NULL;
  rc = canonical(meta_str(&f, "config"), meta_str(&f, "tags"), meta_str(&f, "step"),
                 meta_str(&f, "lineage") ? meta_str(&f, "lineage") : "{}",
                 meta_str(&f, "tokenizer_sha256"), meta_str(&f, "origin"), &canon, err);
  if (rc == MN_OK) rc = read_tensors(&f, t, n, canon, meta->sha256, err);
  if (rc == MN_OK) gpt_params_written(m); /* read into the host view */
  free(canon);
out:
  st_close(&f);
out_free:
  free(t);
  free(names);
  return rc;
}

mn_status ckpt_load_opt(const char *path, gpt *m, const char *weights_sha256, ckpt_opt_state *st,
                        mn_error *err)
{
  st_file f;
  size_t np = gpt_params_count(m);
  mn_status rc = st_open(path, OPT_FORMAT, &f, err);
  if (rc != MN_OK) return rc;
  const char *step = meta_str(&f, "step"), *rng = meta_str(&f, "rng");
  const char *wsha = meta_str(&f, "weights_sha256"), *from_s = meta_str(&f, "from");
  const char *adapt = meta_str(&f, "adapt");
  char *prefix = NULL;
  int64_t s, from = 0;
  memset(st, 0, sizeof *st);
  if (!step || !rng || !wsha || !mn_parse_i64(step, &s) || s < 0) {
    rc = corrupt(path, err, "the metadata lacks step, rng or weights_sha256");
    goto out;
  }
  char *end = NULL;
  errno = 0;
  unsigned long long rv = strtoull(rng, &end, 10);
  if (rng[0] < '0' || rng[0] > '9' || *end || errno == ERANGE) {
    rc = corrupt(path, err, "\"rng\" is not a number: \"%.40s\"", rng);
    goto out;
  }
  if (json_object_get(f.meta, "from") && !from_s) {
    rc = corrupt(path, err, "\"from\" is not a string");
    goto out;
  }
  if (from_s && (!mn_parse_i64(from_s, &from) || from < 0 || (uint64_t)from > np)) {
    rc = corrupt(path, err, "\"from\" is not a parameter index of this model: \"%s\"", from_s);
    goto out;
  }
  /* the state covers [lo, np) with lo <= from; the file's part at its end, the rest zero */
  if ((rc = gpt_reserve_state(m, (size_t)from, err)) != MN_OK) goto out;
  float *mm = gpt_adam_m(m), *vv = gpt_adam_v(m);
  size_t lo = gpt_state_from(m), n = np - (size_t)from, head = (size_t)from - lo;
  if (!mm || !vv) {
    if ((rc = gpt_sync(m, err)) == MN_OK)
      rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory loading \"%s\"", path);
    goto out;
  }
  memset(mm, 0, head * sizeof(float)), memset(vv, 0, head * sizeof(float));
  st_tensor t[2] = {{"m", {n, 0}, 1, mm + head, n, ST_F32}, {"v", {n, 0}, 1, vv + head, n, ST_F32}};
  if (strcmp(wsha, weights_sha256) != 0) {
    rc = corrupt(path, err, "this optimizer state belongs to other weights");
    goto out;
  }
  st->step = s;
  st->rng = rv;
  snprintf(st->weights_sha256, sizeof st->weights_sha256, "%s", wsha);
  if ((rc = check_tensors(&f, t, 2, err)) != MN_OK) goto out;
  if (adapt && !from_s) {
    rc = corrupt(path, err, "the metadata has \"adapt\" without \"from\"");
    goto out;
  }
  if (from_s && !(prefix = opt_prefix(from_s, step, rng, adapt))) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory loading \"%s\"", path);
    goto out;
  }
  rc = read_tensors(&f, t, 2, prefix, meta_str(&f, "sha256"), err);
  if (rc == MN_OK && adapt && !(st->adapt = strdup(adapt)))
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory loading \"%s\"", path);
  gpt_opt_written(m); /* read into the host views (on a failure, zero or partly read: the
                       * caller stops) */
out:
  free(prefix);
  st_close(&f);
  return rc;
}

/* ---------------------------------------------------------------- Fisher */

mn_status ckpt_save_fisher(const char *path, const float *fisher, size_t np,
                           const fisher_meta *meta, mn_error *err)
{
  st_tensor t[1] = {{"fisher", {np, 0}, 1, fisher, np, ST_F32}};
  char sha[MN_SHA256_HEX_LEN + 1], prefix[sizeof meta->info + MN_SHA256_HEX_LEN + 2];
  /* the checksum covers the weights it belongs to and its description, not only the data */
  snprintf(prefix, sizeof prefix, "%s\n%s", meta->weights_sha256, meta->info);
  mn_status rc = sha_of(prefix, t, 1, sha, err);
  if (rc != MN_OK) return rc;
  json_t *m = json_pack("{s:s, s:s, s:s, s:s, s:s}", "format", FISHER_FORMAT, "version", "1",
                        "weights_sha256", meta->weights_sha256, "info", meta->info, "sha256", sha);
  if (!m) return mn_error_set(err, MN_ERR_NOMEM, "out of memory saving \"%s\"", path);
  rc = ckpt__write_st(path, t, 1, m, err);
  json_decref(m);
  return rc;
}

mn_status ckpt_load_fisher(const char *path, float *fisher, size_t np, fisher_meta *meta,
                           mn_error *err)
{
  st_file f;
  st_tensor t[1] = {{"fisher", {np, 0}, 1, fisher, np, ST_F32}};
  mn_status rc = st_open(path, FISHER_FORMAT, &f, err);
  if (rc != MN_OK) return rc;
  const char *wsha = meta_str(&f, "weights_sha256"), *info = meta_str(&f, "info");
  memset(meta, 0, sizeof *meta);
  if (!wsha || !info || strlen(wsha) != MN_SHA256_HEX_LEN || strlen(info) >= sizeof meta->info) {
    rc = corrupt(path, err, "the metadata lacks weights_sha256 or info");
    goto out;
  }
  snprintf(meta->weights_sha256, sizeof meta->weights_sha256, "%s", wsha);
  snprintf(meta->info, sizeof meta->info, "%s", info);
  const char *sha = meta_str(&f, "sha256");
  snprintf(meta->sha256, sizeof meta->sha256, "%s", sha ? sha : "");
  char prefix[sizeof meta->info + MN_SHA256_HEX_LEN + 2];
  snprintf(prefix, sizeof prefix, "%s\n%s", meta->weights_sha256, meta->info);
  if ((rc = check_tensors(&f, t, 1, err)) != MN_OK) goto out;
  rc = read_tensors(&f, t, 1, prefix, sha, err);
  for (size_t i = 0; rc == MN_OK && i < np; i++)
    if (!(fisher[i] >= 0) || !isfinite(fisher[i]))
      rc = corrupt(path, err, "Fisher value %zu is %g: not a finite non-negative number", i,
                   fisher[i]);
out:
  st_close(&f);
  return rc;
}
