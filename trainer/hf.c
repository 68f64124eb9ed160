/*
 * hf.c -- Hugging Face model folders in and out: GPT2LMHeadModel, LlamaForCausalLM and
 * Qwen2ForCausalLM (docs/models.md).
 *
 * import_hf reads config.json, the weights (model.safetensors, or the shards that
 * model.safetensors.index.json names; F32, BF16 or F16, each tensor kept as float) and
 * tokenizer.json into a mnemo checkpoint.  Our layout fuses what Hugging Face keeps apart, so
 * each of our tensors is made of one or more of theirs, rows stacked: q, k, v into one
 * projection, gate and up into one; GPT-2's Conv1D weights are stored (in, out) and
 * transposed.  The origin (config.json as it was, the tensors' dtype, the language-tag rows)
 * goes into the checkpoint's metadata, so that trainer__hf_write and the export write the same
 * architecture back, tensor for tensor in the same dtype.
 *
 * Language tags (docs/models.md says why): a tag is a token of its own, at the ids after the
 * tokenizer's own (tok_base), as in every mnemo model.  `tag_rows` rows are given to them: the
 * model's unused rows first (Qwen2.5 pads its vocabulary), new rows after; each starts as the
 * mean of the embeddings (and of an untied head's rows) of the tokenizer's tokens.
 *
 * Anything this does not implement is refused by name: an architecture, a config field's
 * value, a dtype, a tensor it does not know or a shape it does not expect.
 */
#define _XOPEN_SOURCE 700 /* realpath */
#include "trainer/trainer_int.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define HF_MAX_FILES  256
#define HF_MAX_HEADER ((size_t)100 << 20) /* safetensors' own limit */

/* ---------------------------------------------------------------- the name map */

/* one of Hugging Face's tensors that makes (a band of rows of) one of ours */
typedef struct hf_part {
  char name[128];
  size_t rows;    /* rows of ours it fills (1-D: elements) */
  bool transpose; /* stored (in, out): GPT-2's Conv1D */
} hf_part;

typedef struct hf_map {
  const char *ours; /* a suffix of our block tensor's name */
  const char *theirs[3];
} hf_map;

static const hf_map llama_block[] = {
    {"attn_norm.weight", {"input_layernorm.weight"}},
    {"attn.qkv.weight",
     {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"}},
    {"attn.qkv.bias", {"self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias"}},
    {"attn.o_proj.weight", {"self_attn.o_proj.weight"}},
    {"mlp_norm.weight", {"post_attention_layernorm.weight"}},
    {"mlp.gate_up.weight", {"mlp.gate_proj.weight", "mlp.up_proj.weight"}},
    {"mlp.down_proj.weight", {"mlp.down_proj.weight"}},
};

/*
 * hf_parts -- the Hugging Face tensors our tensor i (gpt_tensor_info's) is made of, in row
 * order; GPT-2's names after `prefix` ("transformer." or "").  Returns how many (1 to 3).
 */
static int hf_parts(const gpt_config *c, int i, const char *prefix, hf_part p[3])
{
  char name[64];
  size_t shape[2], off;
  int ndim;
  gpt_tensor_info(c, i, name, shape, &ndim, &off);
  memset(p, 0, 3 * sizeof *p);
  p[0].rows = shape[0];
  if (gpt__is_gpt2(c)) {
    bool block = strncmp(name, "h.", 2) == 0;
    p[0].transpose = block && ndim == 2; /* Conv1D */
    /* our embeddings are "wte" and "wpe"; theirs are modules with a .weight */
    snprintf(p[0].name, sizeof p[0].name, "%s%s%s", prefix, name,
             ndim == 2 && !block ? ".weight" : "");
    return 1;
  }
  if (strcmp(name, "wte") == 0) {
    snprintf(p[0].name, sizeof p[0].name, "model.embed_tokens.weight");
    return 1;
  }
  if (strcmp(name, "norm.weight") == 0 || strcmp(name, "lm_head.weight") == 0) {
    snprintf(p[0].name, sizeof p[0].name, "%s%s", name[0] == 'n' ? "model." : "", name);
    return 1;
  }
  int l = (int)strtol(name + 2, NULL, 10);
  const char *suffix = strchr(name + 2, '.') + 1;
  size_t C = (size_t)c->n_embd, kvd = (size_t)c->n_kv_head * gpt__head_dim(c);
  size_t F = (size_t)c->n_ff;
  for (size_t k = 0; k < sizeof llama_block / sizeof *llama_block; k++) {
    if (strcmp(suffix, llama_block[k].ours) != 0) continue;
    int n = 0;
    for (; n < 3 && llama_block[k].theirs[n]; n++)
      snprintf(p[n].name, sizeof p[n].name, "model.layers.%d.%s", l, llama_block[k].theirs[n]);
    if (n == 3) p[0].rows = C, p[1].rows = kvd, p[2].rows = kvd; /* q, k, v */
    if (n == 2) p[0].rows = F, p[1].rows = F;                    /* gate, up */
    return n;
  }
  return 0; /* unreachable: every tensor of the family is in the table */
}

/* ---------------------------------------------------------------- reading safetensors */

typedef struct hf_file {
  char path[4200];
  uint8_t *map;
  size_t len, data; /* the file's size; where its data begins */
  json_t *header;
} hf_file;

typedef struct hf_dir {
  const char *dir;
  hf_file f[HF_MAX_FILES];
  int n;
  json_t *used; /* {name: true} of the tensors read */
} hf_dir;

static void hf_close(hf_dir *d) /* NULL-safe */
{
  if (!d) return;
  for (int i = 0; i < d->n; i++) {
    if (d->f[i].map) munmap(d->f[i].map, d->f[i].len);
    json_decref(d->f[i].header);
  }
  json_decref(d->used);
  d->n = 0;
}

static int cmp_span(const void *x, const void *y)
{
  const size_t *a = x, *b = y;
  return (a[0] > b[0]) - (a[0] < b[0]);
}

/* hf_json -- a JSON file of the folder: a regular file, parsed whole (flags: jansson's);
 * a parse error names the file, line and column */
static mn_status hf_json(const char *path, size_t flags, json_t **out, mn_error *err)
{
  int fd;
  *out = NULL;
  mn_status rc = trainer__open_regular(path, &fd, err);
  if (rc != MN_OK) return rc;
  json_error_t je;
  *out = json_loadfd(fd, flags, &je);
  close(fd);
  if (!*out)
    return mn_error_set(err, MN_ERR_INPUT, "\"%s\": %s (line %d, column %d)", path, je.text,
                        je.line, je.column);
  return MN_OK;
}

/* hf_open_file -- one safetensors file mapped, its header parsed and every entry's dtype, shape
 * and offsets checked against the file */
static mn_status hf_open_file(hf_dir *d, const char *name, mn_error *err)
{
  if (d->n == HF_MAX_FILES)
    return mn_error_set(err, MN_ERR_INPUT, "%s: more than %d weight files", d->dir, HF_MAX_FILES);
  if (strchr(name, '/') || strcmp(name, "..") == 0)
    return mn_error_set(err, MN_ERR_INPUT, "%s: the weight file name \"%s\" leaves the folder",
                        d->dir, name);
  hf_file *f = &d->f[d->n];
  memset(f, 0, sizeof *f);
  snprintf(f->path, sizeof f->path, "%s/%s", d->dir, name);
  int fd;
  struct stat st;
  mn_status orc = trainer__open_regular(f->path, &fd, err);
  if (orc != MN_OK) return orc;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return mn_error_set(err, MN_ERR_IO, "could not open \"%s\": %s", f->path, strerror(e));
  }
  f->len = (size_t)st.st_size;
  f->map = f->len >= 8 ? mmap(NULL, f->len, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
  close(fd);
  if (f->map == MAP_FAILED) f->map = NULL;
  d->n++; /* hf_close releases it from here on */
  if (!f->map) return mn_error_set(err, MN_ERR_INPUT, "\"%s\" is not a safetensors file", f->path);
  uint64_t hlen = mn_get_le64(f->map);
  if (hlen > HF_MAX_HEADER || hlen > f->len - 8)
    return mn_error_set(err, MN_ERR_INPUT, "\"%s\": a header of %llu bytes does not fit the file",
                        f->path, (unsigned long long)hlen);
  json_error_t je;
  f->header = json_loadb((const char *)f->map + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
  if (!json_is_object(f->header))
    return mn_error_set(err, MN_ERR_INPUT,
                        "\"%s\": its header is not a JSON object (%s, at byte %d)", f->path,
                        f->header ? "another value" : je.text, 8 + je.position);
  f->data = 8 + (size_t)hlen;
  /* the tensors' bytes tile the data from its start to the file's end, in some order, as the
   * format requires: no tensor shares bytes with another, none lies past the end */
  size_t ntensors = json_object_size(f->header), nspans = 0;
  size_t(*spans)[2] = calloc(ntensors ? ntensors : 1, sizeof *spans);
  if (!spans) return mn_error_set(err, MN_ERR_NOMEM, "out of memory reading \"%s\"", f->path);
  const char *key;
  json_t *e;
  json_object_foreach(f->header, key, e)
  {
    if (strcmp(key, "__metadata__") == 0) continue;
    const char *dt = json_string_value(json_object_get(e, "dtype"));
    json_t *shape = json_object_get(e, "shape"), *offs = json_object_get(e, "data_offsets");
    size_t esz = !dt                                                 ? 0
                 : strcmp(dt, "F32") == 0                            ? 4
                 : strcmp(dt, "BF16") == 0 || strcmp(dt, "F16") == 0 ? 2
                                                                     : 0;
    if (!dt || !esz) {
      free(spans);
      return mn_error_set(err, MN_ERR_INPUT,
                          "\"%s\": tensor %s has dtype %s; import-hf reads F32, BF16 and F16",
                          f->path, key, dt ? dt : "(none)");
    }
    size_t count = 1, i;
    json_t *v;
    bool ok = json_is_array(shape) && json_array_size(shape) <= 4;
    json_array_foreach(shape, i, v)
    {
      json_int_t s = json_integer_value(v);
      ok = ok && json_is_integer(v) && s >= 0 && s < ((json_int_t)1 << 40) &&
           (s == 0 || count <= ((size_t)1 << 40) / (size_t)s);
      if (ok) count *= (size_t)s;
    }
    if (!ok) {
      free(spans);
      return mn_error_set(err, MN_ERR_INPUT,
                          "\"%s\": tensor %s's shape is not a list of at most 4 sizes with "
                          "fewer than 2^40 elements in all",
                          f->path, key);
    }
    ok = json_is_array(offs) && json_array_size(offs) == 2;
    json_int_t a = ok ? json_integer_value(json_array_get(offs, 0)) : -1;
    json_int_t b = ok ? json_integer_value(json_array_get(offs, 1)) : -1;
    if (!ok || a < 0 || b < a || (size_t)(b - a) != count * esz || (size_t)b > f->len - f->data) {
      free(spans);
      return mn_error_set(err, MN_ERR_INPUT,
                          "\"%s\": tensor %s's shape (%zu elements of %zu bytes) and offsets "
                          "[%lld, %lld) do not fit the file's %zu bytes of data",
                          f->path, key, count, esz, (long long)a, (long long)b, f->len - f->data);
    }
    spans[nspans][0] = (size_t)a, spans[nspans][1] = (size_t)b, nspans++;
  }
  qsort(spans, nspans, sizeof *spans, cmp_span);
  size_t end = 0;
  bool tiled = true;
  for (size_t i = 0; i < nspans; i++)
    tiled = tiled && spans[i][0] == end, end = spans[i][1];
  free(spans);
  if (!tiled || end != f->len - f->data)
    return mn_error_set(err, MN_ERR_INPUT,
                        "\"%s\": the tensors' bytes overlap or leave gaps in the data (the format "
                        "has them cover it exactly)",
                        f->path);
  return MN_OK;
}

/* hf_open -- the folder's weights: the index's shards, or model.safetensors */
static mn_status hf_open(hf_dir *d, const char *dir, mn_error *err)
{
  memset(d, 0, sizeof *d);
  d->dir = dir;
  d->used = json_object();
  if (!d->used) return mn_error_set(err, MN_ERR_NOMEM, "out of memory");
  char path[4200];
  snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
  if (access(path, F_OK) != 0) return hf_open_file(d, "model.safetensors", err);
  json_t *idx = NULL;
  mn_status rc = hf_json(path, JSON_REJECT_DUPLICATES, &idx, err);
  if (rc != MN_OK) return rc;
  json_t *map = json_object_get(idx, "weight_map");
  if (!json_is_object(map))
    rc = mn_error_set(err, MN_ERR_INPUT, "\"%s\": no weight_map object", path);
  json_t *seen = json_object(), *v;
  const char *key;
  json_object_foreach(map, key, v)
  {
    const char *file = json_string_value(v);
    if (rc != MN_OK) break;
    if (!file) {
      rc = mn_error_set(err, MN_ERR_INPUT, "\"%s\": %s maps to no file name", path, key);
    } else if (!json_object_get(seen, file)) {
      json_object_set_new(seen, file, json_true());
      rc = hf_open_file(d, file, err);
    }
  }
  json_decref(seen);
  /* every tensor where the index says it is, and nowhere else */
  for (int i = 0; i < d->n && rc == MN_OK; i++) {
    json_t *e;
    json_object_foreach(d->f[i].header, key, e)
    {
      const char *want = json_string_value(json_object_get(map, key));
      const char *base = strrchr(d->f[i].path, '/') + 1;
      if (strcmp(key, "__metadata__") == 0 || (want && strcmp(want, base) == 0)) continue;
      rc = mn_error_set(err, MN_ERR_INPUT, "\"%s\": tensor %s is there, but \"%s\" %s%s",
                        d->f[i].path, key, path, want ? "names " : "does not name it",
                        want ? want : "");
      break;
    }
  }
  json_decref(idx);
  return rc;
}

/* hf_find -- the file and header entry of tensor name, or NULL */
static json_t *hf_find(const hf_dir *d, const char *name, const hf_file **file)
{
  for (int i = 0; i < d->n; i++) {
    json_t *e = json_object_get(d->f[i].header, name);
    if (e) {
      *file = &d->f[i];
      return e;
    }
  }
  return NULL;
}

static st_dtype dtype_of(json_t *e)
{
  const char *dt = json_string_value(json_object_get(e, "dtype"));
  return strcmp(dt, "BF16") == 0 ? ST_BF16 : strcmp(dt, "F16") == 0 ? ST_F16 : ST_F32;
}

/* hf_entry -- tensor name's header entry when it has the shape (rows, cols) (cols 0: a vector
 * of rows; transposed: stored (cols, rows)); NULL with the error naming it otherwise */
static json_t *hf_entry(const hf_dir *d, const char *name, size_t rows, size_t cols,
                        bool transposed, const hf_file **file, mn_error *err)
{
  const hf_file *f = NULL;
  json_t *e = hf_find(d, name, &f);
  *file = f;
  if (!e) {
    (void)mn_error_set(err, MN_ERR_INPUT, "%s: no tensor %s", d->dir, name);
    return NULL;
  }
  json_t *shape = json_object_get(e, "shape");
  size_t want[2] = {transposed ? cols : rows, transposed ? rows : cols};
  size_t nd = cols ? 2 : 1;
  bool ok = json_array_size(shape) == nd;
  for (size_t i = 0; ok && i < nd; i++)
    ok = (size_t)json_integer_value(json_array_get(shape, i)) == want[i];
  if (!ok) {
    char *got = json_dumps(shape, JSON_COMPACT);
    (void)mn_error_set(err, MN_ERR_INPUT,
                       "\"%s\": tensor %s has shape %s; the config makes it [%zu%s%.0zu]", f->path,
                       name, got ? got : "?", want[0], cols ? ", " : "", cols ? want[1] : 0);
    free(got);
    return NULL;
  }
  return e;
}

/*
 * hf_read -- tensor name, of shape (rows, cols) (cols 0: a vector of rows; transposed: stored
 * (cols, rows)), as floats into out (row-major, rows x cols); every value finite.
 */
static mn_status hf_read(hf_dir *d, const char *name, size_t rows, size_t cols, bool transposed,
                         float *out, st_dtype *dtype, mn_error *err)
{
  const hf_file *f;
  json_t *e = hf_entry(d, name, rows, cols, transposed, &f, err);
  if (!e) return MN_ERR_INPUT;
  *dtype = dtype_of(e);
  const uint8_t *src =
      f->map + f->data + json_integer_value(json_array_get(json_object_get(e, "data_offsets"), 0));
  size_t n = rows * (cols ? cols : 1);
  for (size_t i = 0; i < n; i++) {
    float v;
    if (*dtype == ST_F32) {
      memcpy(&v, src + 4 * i, sizeof v);
    } else {
      uint16_t h;
      memcpy(&h, src + 2 * i, sizeof h);
      v = trainer__16_to_f32(*dtype, h);
    }
    if (!isfinite(v))
      return mn_error_set(err, MN_ERR_INPUT, "\"%s\": tensor %s holds %g at element %zu", f->path,
                          name, (double)v, i);
    size_t r = transposed ? i % rows : i / (cols ? cols : 1);
    size_t c = transposed ? i / rows : i % (cols ? cols : 1);
    out[r * (cols ? cols : 1) + c] = v;
  }
  json_object_set_new(d->used, name, json_true());
  return MN_OK;
}

/* ---------------------------------------------------------------- config.json */

/* the integer field key of j (or def when absent and def >= 0); -1 with an error otherwise */
static long cfg_int(json_t *j, const char *key, long def, const char *path, mn_error *err)
{
  json_t *v = json_object_get(j, key);
  if ((!v || json_is_null(v)) && def >= 0) return def;
  if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > (1 << 30)) {
    (void)mn_error_set(err, MN_ERR_INPUT, "\"%s\": %s is %s; a positive integer is needed", path,
                       key, v ? "not a positive integer" : "missing");
    return -1;
  }
  return (long)json_integer_value(v);
}

/* cfg_num -- the number at key of j: def when absent or null (def NAN: it must be there);
 * NAN with an error naming it when it is something else */
static double cfg_num(json_t *j, const char *key, double def, const char *path, mn_error *err)
{
  json_t *v = json_object_get(j, key);
  if (json_is_number(v)) return json_number_value(v);
  if ((!v || json_is_null(v)) && !isnan(def)) return def;
  (void)mn_error_set(err, MN_ERR_INPUT, "\"%s\": %s is %s; a number is needed", path, key,
                     v ? "not a number" : "missing");
  return NAN;
}

/* cfg_false -- key absent, null or false (a feature we do not implement is off) */
static mn_status cfg_false(json_t *j, const char *key, const char *path, mn_error *err)
{
  json_t *v = json_object_get(j, key);
  if (!v || json_is_null(v) || json_is_false(v)) return MN_OK;
  return mn_error_set(err, MN_ERR_INPUT, "\"%s\": %s is set; import-hf does not implement it", path,
                      key);
}

/* cfg_is -- key absent, or the string want (or want2) */
static mn_status cfg_is(json_t *j, const char *key, const char *want, const char *want2,
                        const char *path, mn_error *err)
{
  json_t *v = json_object_get(j, key);
  const char *s = json_string_value(v);
  if (!v || (s && (strcmp(s, want) == 0 || (want2 && strcmp(s, want2) == 0)))) return MN_OK;
  return mn_error_set(err, MN_ERR_INPUT, "\"%s\": %s \"%s\" is not supported (only \"%s\"%s%s%s)",
                      path, key, s ? s : "(not a string)", want, want2 ? " or \"" : "",
                      want2 ? want2 : "", want2 ? "\"" : "");
}

/*
 * hf_config -- config.json j (of path) as our configuration; *rows the embedding's rows
 * (vocab_size).  The vocabulary (vocab_size, padded_vocab) is set by the caller.
 */
static mn_status hf_config(json_t *j, const char *path, gpt_config *g, int *rows, mn_error *err)
{
  memset(g, 0, sizeof *g);
  json_t *archs = json_object_get(j, "architectures");
  const char *arch = json_string_value(json_array_get(archs, 0));
  if (!arch || json_array_size(archs) != 1)
    return mn_error_set(err, MN_ERR_INPUT, "\"%s\": architectures must name one class", path);
  mn_status rc = MN_OK;
  long v[8];
  if (strcmp(arch, "GPT2LMHeadModel") == 0) {
    g->arch = GPT_ARCH_GPT2;
    if ((rc = cfg_is(j, "model_type", "gpt2", NULL, path, err)) != MN_OK) return rc;
    v[0] = cfg_int(j, "n_embd", -1, path, err), v[1] = cfg_int(j, "n_layer", -1, path, err);
    v[2] = cfg_int(j, "n_head", -1, path, err), v[3] = cfg_int(j, "n_positions", -1, path, err);
    v[4] = cfg_int(j, "vocab_size", -1, path, err);
    for (int i = 0; i < 5; i++)
      if (v[i] < 0) return MN_ERR_INPUT;
    g->n_embd = (int)v[0], g->n_layer = (int)v[1], g->n_head = (int)v[2];
    g->max_seq_len = (int)v[3], *rows = (int)v[4];
    json_t *inner = json_object_get(j, "n_inner");
    if (inner && !json_is_null(inner) && json_integer_value(inner) != 4 * v[0])
      return mn_error_set(err, MN_ERR_INPUT, "\"%s\": n_inner %lld is not 4 n_embd", path,
                          (long long)json_integer_value(inner));
    double eps = cfg_num(j, "layer_norm_epsilon", 1e-5, path, err);
    if (isnan(eps)) return MN_ERR_INPUT;
    if (fabs(eps - 1e-5) > 1e-12)
      return mn_error_set(err, MN_ERR_INPUT, "\"%s\": layer_norm_epsilon %g is not 1e-5", path,
                          eps);
    if ((rc = cfg_is(j, "activation_function", "gelu_new", "gelu_pytorch_tanh", path, err)) ||
        (rc = cfg_false(j, "scale_attn_by_inverse_layer_idx", path, err)) ||
        (rc = cfg_false(j, "reorder_and_upcast_attn", path, err)) ||
        (rc = cfg_false(j, "add_cross_attention", path, err)))
      return rc;
    json_t *scale = json_object_get(j, "scale_attn_weights"), *tie;
    tie = json_object_get(j, "tie_word_embeddings");
    if (json_is_false(scale) || json_is_false(tie))
      return mn_error_set(err, MN_ERR_INPUT, "\"%s\": %s is false; import-hf does not implement it",
                          path,
                          json_is_false(scale) ? "scale_attn_weights" : "tie_word_embeddings");
    return MN_OK;
  }
  bool qwen2 = strcmp(arch, "Qwen2ForCausalLM") == 0;
  if (!qwen2 && strcmp(arch, "LlamaForCausalLM") != 0)
    return mn_error_set(err, MN_ERR_INPUT,
                        "\"%s\": the architecture %s is not supported (GPT2LMHeadModel, "
                        "LlamaForCausalLM, Qwen2ForCausalLM)",
                        path, arch);
  g->arch = qwen2 ? GPT_ARCH_QWEN2 : GPT_ARCH_LLAMA;
  if ((rc = cfg_is(j, "model_type", qwen2 ? "qwen2" : "llama", NULL, path, err)) != MN_OK)
    return rc; /* transformers picks the class by model_type */
  v[0] = cfg_int(j, "hidden_size", -1, path, err);
  v[1] = cfg_int(j, "num_hidden_layers", -1, path, err);
  v[2] = cfg_int(j, "num_attention_heads", -1, path, err);
  v[3] = cfg_int(j, "num_key_value_heads", v[2] > 0 ? v[2] : 1, path, err);
  v[4] = cfg_int(j, "intermediate_size", -1, path, err);
  v[5] = cfg_int(j, "max_position_embeddings", -1, path, err);
  v[6] = cfg_int(j, "vocab_size", -1, path, err);
  for (int i = 0; i < 7; i++)
    if (v[i] < 0) return MN_ERR_INPUT;
  g->n_embd = (int)v[0], g->n_layer = (int)v[1], g->n_head = (int)v[2], g->n_kv_head = (int)v[3];
  g->n_ff = (int)v[4], g->max_seq_len = (int)v[5], *rows = (int)v[6];
  /* transformers 4 writes rope_theta and rope_scaling; 5 one rope_parameters with both */
  json_t *rp = json_object_get(j, "rope_parameters"), *rsc = json_object_get(j, "rope_scaling");
  if ((rp && !json_is_null(rp) && !json_is_object(rp)) ||
      (rsc && !json_is_null(rsc) && !json_is_object(rsc)))
    return mn_error_set(err, MN_ERR_INPUT, "\"%s\": %s is not an object", path,
                        rp && !json_is_null(rp) && !json_is_object(rp) ? "rope_parameters"
                                                                       : "rope_scaling");
  json_t *rs = json_is_object(rp) ? rp : rsc;
  double eps = cfg_num(j, "rms_norm_eps", 1e-6, path, err);
  double theta = cfg_num(json_is_object(rp) ? rp : j, "rope_theta", 10000.0, path, err);
  if (isnan(eps) || isnan(theta)) return MN_ERR_INPUT;
  g->norm_eps = (float)eps, g->rope_theta = theta;
  json_t *tie = json_object_get(j, "tie_word_embeddings");
  if (tie && !json_is_boolean(tie))
    return mn_error_set(err, MN_ERR_INPUT, "\"%s\": tie_word_embeddings is not true or false",
                        path);
  g->untied = !json_is_true(tie);
  json_t *hd = json_object_get(j, "head_dim");
  if (hd && !json_is_null(hd) &&
      (!json_is_integer(hd) || v[0] % v[2] != 0 || json_integer_value(hd) != v[0] / v[2]))
    return mn_error_set(err, MN_ERR_INPUT,
                        "\"%s\": head_dim %lld is not hidden_size / num_attention_heads", path,
                        (long long)json_integer_value(hd));
  if ((rc = cfg_is(j, "hidden_act", "silu", NULL, path, err)) ||
      (!qwen2 && (rc = cfg_false(j, "attention_bias", path, err))) ||
      (rc = cfg_false(j, "mlp_bias", path, err)) ||
      (qwen2 && (rc = cfg_false(j, "use_sliding_window", path, err))))
    return rc;
  const char *type = json_string_value(json_object_get(rs, "rope_type"));
  if (!type) type = json_string_value(json_object_get(rs, "type"));
  if (json_is_object(rs) && !(type && strcmp(type, "default") == 0)) {
    if (!type || strcmp(type, "llama3") != 0)
      return mn_error_set(err, MN_ERR_INPUT,
                          "\"%s\": %s of type \"%s\" is not supported (only llama3)", path,
                          rs == rp ? "rope_parameters" : "rope_scaling", type ? type : "(none)");
    g->rope_factor = cfg_num(rs, "factor", NAN, path, err);
    g->rope_low_freq = cfg_num(rs, "low_freq_factor", NAN, path, err);
    g->rope_high_freq = cfg_num(rs, "high_freq_factor", NAN, path, err);
    if (isnan(g->rope_factor) || isnan(g->rope_low_freq) || isnan(g->rope_high_freq))
      return MN_ERR_INPUT;
    if (g->rope_factor < 1.0) /* 0 would mean no scaling: llama3 says there is */
      return mn_error_set(err, MN_ERR_INPUT, "\"%s\": llama3's factor %g is below 1", path,
                          g->rope_factor);
    long om = cfg_int(rs, "original_max_position_embeddings", g->max_seq_len, path, err);
    if (om < 0) return MN_ERR_INPUT;
    g->rope_orig_max = (int)om;
  }
  return MN_OK;
}

/* ---------------------------------------------------------------- import */

#define HF_DEFAULT_TAG_ROWS 256

/* ignorable -- a buffer some saves hold beside the weights (GPT-2's causal masks, Llama's
 * rotary frequencies): derived from the config, nothing to import */
static bool ignorable(const char *name)
{
  static const char *const ends[] = {".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq"};
  size_t n = strlen(name);
  for (size_t i = 0; i < sizeof ends / sizeof *ends; i++) {
    size_t k = strlen(ends[i]);
    if (n > k && strcmp(name + n - k, ends[i]) == 0) return true;
  }
  return false;
}

/* fill_tag_rows -- rows [from, to) of a (rows, C) matrix: the mean of rows [0, base) */
static mn_status fill_tag_rows(float *w, size_t C, size_t base, size_t from, size_t to,
                               mn_error *err)
{
  if (from >= to) return MN_OK;
  double *mean = calloc(C, sizeof *mean);
  if (!mean) return mn_error_set(err, MN_ERR_NOMEM, "out of memory for the tags' rows");
  for (size_t r = 0; r < base; r++)
    for (size_t c = 0; c < C; c++)
      mean[c] += w[r * C + c];
  for (size_t r = from; r < to; r++)
    for (size_t c = 0; c < C; c++)
      w[r * C + c] = (float)(mean[c] / (double)base);
  free(mean);
  return MN_OK;
}

/* check_tensors -- every tensor a model of configuration c is made of is in d, with its shape
 * (the embeddings and an untied head with the file's rows) */
static mn_status check_tensors(const hf_dir *d, const gpt_config *c, int rows, const char *prefix,
                               mn_error *err)
{
  for (int i = 0; i < gpt_num_tensors(c); i++) {
    char name[64];
    size_t shape[2], off;
    int ndim;
    gpt_tensor_info(c, i, name, shape, &ndim, &off);
    hf_part part[3];
    int n = hf_parts(c, i, prefix, part);
    bool vocab = strcmp(name, "wte") == 0 || strcmp(name, "lm_head.weight") == 0;
    for (int k = 0; k < n; k++) {
      const hf_file *f;
      if (!hf_entry(d, part[k].name, vocab ? (size_t)rows : part[k].rows, ndim == 2 ? shape[1] : 0,
                    part[k].transpose, &f, err))
        return MN_ERR_INPUT;
    }
  }
  return MN_OK;
}

/* import_tensors -- every tensor of m from d; *dtypes counts the dtypes read; the tied head, if
 * the files hold one, must be the embeddings */
static mn_status import_tensors(hf_dir *d, gpt *m, int rows, const char *prefix,
                                size_t dtypes[ST_DTYPES], json_t *exceptions, mn_error *err)
{
  const gpt_config *c = gpt_get_config(m);
  float *p = gpt_params(m);
  mn_status rc = MN_OK;
  for (int i = 0; i < gpt_num_tensors(c) && rc == MN_OK; i++) {
    char name[64];
    size_t shape[2], off;
    int ndim;
    gpt_tensor_info(c, i, name, shape, &ndim, &off);
    hf_part part[3];
    int n = hf_parts(c, i, prefix, part);
    bool vocab = strcmp(name, "wte") == 0 || strcmp(name, "lm_head.weight") == 0;
    size_t cols = ndim == 2 ? shape[1] : 0, row0 = 0;
    for (int k = 0; k < n && rc == MN_OK; k++) {
      size_t r = vocab ? (size_t)rows : part[k].rows;
      st_dtype dt = ST_F32;
      rc = hf_read(d, part[k].name, r, cols, part[k].transpose, p + off + row0 * (cols ? cols : 1),
                   &dt, err);
      dtypes[dt]++;
      if (rc == MN_OK) json_object_set_new(exceptions, part[k].name, json_integer(dt));
      row0 += r;
    }
    if (vocab) /* rows past the file's: zero until tags claim them */
      memset(p + off + (size_t)rows * shape[1], 0,
             (shape[0] - (size_t)rows) * shape[1] * sizeof(float));
  }
  const hf_file *f;
  const char *head = "lm_head.weight";
  json_t *e = rc == MN_OK && !c->untied ? hf_find(d, head, &f) : NULL;
  if (e) { /* a tied head saved anyway: accepted when it is the embeddings */
    size_t C = (size_t)c->n_embd, n = (size_t)rows * C;
    float *h = malloc(n * sizeof *h);
    st_dtype dt;
    if (!h) return mn_error_set(err, MN_ERR_NOMEM, "out of memory reading %s", head);
    rc = hf_read(d, head, (size_t)rows, C, false, h, &dt, err);
    if (rc == MN_OK && memcmp(h, p, n * sizeof *h) != 0)
      rc = mn_error_set(err, MN_ERR_INPUT,
                        "\"%s\": %s differs from the embeddings, but the config ties them", f->path,
                        head);
    free(h);
  }
  return rc;
}

/* unknown_tensor -- the first tensor of the files that was not read and is no known buffer */
static mn_status unknown_tensor(const hf_dir *d, const char *arch, mn_error *err)
{
  for (int i = 0; i < d->n; i++) {
    const char *key;
    json_t *e;
    json_object_foreach(d->f[i].header, key, e)
    {
      if (strcmp(key, "__metadata__") == 0 || json_object_get(d->used, key) || ignorable(key))
        continue;
      return mn_error_set(err, MN_ERR_INPUT,
                          "\"%s\": tensor %s is not part of a %s as import-hf knows it",
                          d->f[i].path, key, arch);
    }
  }
  return MN_OK;
}

/* inside -- whether file path out would land directly in folder dir (both resolved) */
static bool inside(const char *dir, const char *out)
{
  char parent[4200];
  snprintf(parent, sizeof parent, "%s", out);
  char *slash = strrchr(parent, '/');
  if (!slash)
    snprintf(parent, sizeof parent, ".");
  else if (slash == parent)
    parent[1] = '\0';
  else
    *slash = '\0';
  char *a = realpath(dir, NULL), *b = realpath(parent, NULL);
  bool same = a && b && strcmp(a, b) == 0;
  free(a), free(b);
  return same;
}

mn_status import_hf(const char *dir, const char *out, int tag_rows, const tok_tags *tags,
                    mn_error *err)
{
  char path[4200];
  if (inside(dir, out)) /* it could replace the folder's own weights or config */
    return mn_error_set(err, MN_ERR_USAGE,
                        "import-hf writes \"%s\" into the model folder %s: write the checkpoint "
                        "elsewhere",
                        out, dir);
  snprintf(path, sizeof path, "%s/config.json", dir);
  json_t *cfg = NULL, *origin = NULL, *exc = json_object();
  tokenizer *tok = NULL;
  gpt *m = NULL;
  hf_dir *d = calloc(1, sizeof *d);          /* large: a path per file */
  ckpt_meta *meta = calloc(1, sizeof *meta); /* large: a tag table, lineage and origin */
  mn_status rc = MN_OK;
  if (!meta || !exc || !d) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory importing %s", dir);
    goto out;
  }
  if (access(path, F_OK) != 0) {
    rc = mn_error_set(err, MN_ERR_IO, "\"%s\": %s (a Hugging Face model folder has one)", path,
                      strerror(errno));
    goto out;
  }
  if ((rc = hf_json(path, 0, &cfg, err)) != MN_OK) goto out;
  gpt_config g;
  int rows = 0;
  if ((rc = hf_config(cfg, path, &g, &rows, err)) != MN_OK) goto out;
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  if ((rc = tok_load(path, &tok, &meta->tags, err)) != MN_OK) goto out;
  int base = (int)tok_base(tok);
  if (base > rows) {
    rc = mn_error_set(err, MN_ERR_INPUT,
                      "%s: the tokenizer has %d ids, the model's vocab_size only %d rows", dir,
                      base, rows);
    goto out;
  }
  /* a folder mnemo exported: its tokenizer names the tags, its rows are already theirs */
  bool exported = meta->tags.n > 0;
  if (tag_rows < 0 && exported) tag_rows = rows - base;
  if (tags) { /* the database's, numbered from TOK_FIRST_TAG: moved to follow the tokenizer */
    tok_tags *db = malloc(sizeof *db);
    if (!db) {
      rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory for the language tags");
      goto out;
    }
    *db = *tags;
    rc = tok_tags_rebase(db, TOK_FIRST_TAG, (uint32_t)base, err);
    for (int i = 0; i < db->n && rc == MN_OK; i++) {
      const char *code = db->t[i].code, *owner = tok_code_of(&meta->tags, db->t[i].id);
      int have = tok_tag_of(&meta->tags, code);
      if ((have >= 0 && have != db->t[i].id) || (have < 0 && owner))
        rc = mn_error_set(err, MN_ERR_INPUT,
                          "--tags gives \"%s\" tag %d (id %d after the tokenizer's %d ids), but "
                          "%s/tokenizer.json has %s",
                          code, tags->t[i].id, db->t[i].id, base, dir,
                          have >= 0 ? "another id for it" : "that id for another language");
      else if (have < 0)
        rc = tok_tags_add(&meta->tags, code, db->t[i].id, err);
    }
    free(db);
    if (rc != MN_OK) goto out;
  }
  if (tag_rows < 0) tag_rows = HF_DEFAULT_TAG_ROWS;
  int V = base + tag_rows;
  for (int i = 0; i < meta->tags.n; i++) { /* every tag has its row, within bounds */
    int id = meta->tags.t[i].id;
    if (id >= base + TOK_MAX_TAGS) {
      rc = mn_error_set(err, MN_ERR_INPUT,
                        "the tag of \"%s\" is id %d, more than %d past the tokenizer's %d ids "
                        "(%s)",
                        meta->tags.t[i].code, id, TOK_MAX_TAGS, base,
                        exported ? "its tokenizer.json" : "--tags");
      goto out;
    }
    if (id >= V) V = id + 1;
  }
  g.vocab_size = V;
  g.padded_vocab = V > rows ? V : rows;
  mn_error e2;
  if (gpt_config_check(&g, &e2) != MN_OK) {
    rc = mn_error_set(err, MN_ERR_INPUT, "%s/config.json: %s", dir, e2.msg);
    goto out;
  }
  if ((rc = hf_open(d, dir, err)) != MN_OK) goto out;
  const hf_file *f;
  const char *prefix =
      gpt__is_gpt2(&g) && !hf_find(d, "transformer.wte.weight", &f) ? "" : "transformer.";
  /* every tensor the config implies, with its shape, before a model is sized by it: a
   * config.json that claims more than the files hold is refused by name, not by an
   * allocation */
  if ((rc = check_tensors(d, &g, rows, prefix, err)) != MN_OK) goto out;
  if ((rc = gpt_create(&g, 1, 1, 0, kernels_cpu(), &m, err)) != MN_OK) goto out;
  size_t dtypes[ST_DTYPES] = {0};
  if ((rc = import_tensors(d, m, rows, prefix, dtypes, exc, err)) != MN_OK ||
      (rc = unknown_tensor(
           d, json_string_value(json_array_get(json_object_get(cfg, "architectures"), 0)), err)) !=
          MN_OK)
    goto out;
  /* the tags' rows: the mean of the tokenizer's tokens' rows, in the embeddings and an
   * untied head; rows past V stay as they were.  A folder mnemo exported keeps the rows its
   * file has (trained tags): only new rows are filled. */
  size_t C = (size_t)g.n_embd;
  float *p = gpt_params(m);
  int from = exported ? (rows > base ? rows : base) : base;
  if (V > from) {
    size_t head = gpt_block_offset(&g, g.n_layer) + C;
    if ((rc = fill_tag_rows(p, C, (size_t)base, (size_t)from, (size_t)V, err)) != MN_OK ||
        (g.untied &&
         (rc = fill_tag_rows(p + head, C, (size_t)base, (size_t)from, (size_t)V, err)) != MN_OK))
      goto out;
  }
  gpt_params_written(m);
  /* the dtype most tensors have, and the others by name */
  st_dtype most = ST_F32;
  for (int t = 0; t < ST_DTYPES; t++)
    if (dtypes[t] > dtypes[most]) most = (st_dtype)t;
  json_t *others = json_object(), *v;
  const char *key;
  json_object_foreach(exc, key, v) if (json_integer_value(v) != most) json_object_set_new(
      others, key, json_string(trainer__st_dtype_name((st_dtype)json_integer_value(v))));
  origin = json_pack("{s:{s:O, s:s, s:o, s:i, s:s, s:{s:i, s:i, s:s}}}", "hf", "config", cfg,
                     "dtype", trainer__st_dtype_name(most), "dtypes", others, "rows", rows,
                     "prefix", prefix, "tag_rows", "first", base, "count", V - base, "init",
                     "the mean of the tokenizer's rows");
  char *text = origin ? json_dumps(origin, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  if (!text || strlen(text) >= sizeof meta->origin) {
    rc = mn_error_set(err, text ? MN_ERR_INPUT : MN_ERR_NOMEM,
                      "%s: its config.json and the dtypes of the tensors that differ from the "
                      "rest are too long to carry in a checkpoint (%zu bytes)",
                      dir, text ? strlen(text) : 0);
    free(text);
    goto out;
  }
  snprintf(meta->origin, sizeof meta->origin, "%s", text);
  free(text);
  meta->tok = tok;
  json_t *lin = json_pack("{s:s, s:s}", "kind", "import-hf", "from", dir);
  char *ltext = lin ? json_dumps(lin, JSON_COMPACT) : NULL;
  json_decref(lin);
  snprintf(meta->lineage, sizeof meta->lineage, "%s", ltext ? ltext : "{}");
  free(ltext);
  rc = ckpt_save(out, m, meta, err);
out:
  gpt_destroy(m);
  hf_close(d);
  free(d);
  tok_destroy(tok);
  json_decref(origin);
  json_decref(exc);
  json_decref(cfg);
  free(meta);
  return rc;
}

/* ---------------------------------------------------------------- export */

/* origin_hf -- the "hf" object of a checkpoint's origin (a new reference), or NULL: the model
 * was not imported */
static json_t *origin_hf(const ckpt_meta *meta)
{
  json_t *o = meta->origin[0] ? json_loads(meta->origin, 0, NULL) : NULL;
  json_t *hf = json_incref(json_object_get(o, "hf"));
  json_decref(o);
  return hf;
}

mn_status trainer__hf_write(const char *path, gpt *m, const ckpt_meta *meta, mn_error *err)
{
  const gpt_config *c = gpt_get_config(m);
  int n = gpt_num_tensors(c);
  json_t *hf = origin_hf(meta), *dtypes = json_object_get(hf, "dtypes");
  const char *prefix = json_string_value(json_object_get(hf, "prefix"));
  const char *most = json_string_value(json_object_get(hf, "dtype"));
  size_t total = gpt_params_count(m);
  float *data = malloc(total * sizeof(float));
  st_tensor *t = calloc((size_t)n * 3, sizeof *t);
  hf_part *parts = calloc((size_t)n * 3, sizeof *parts);
  json_t *st_meta = json_pack("{s:s}", "format", "pt");
  mn_status rc = MN_OK;
  if (!data || !t || !parts || !st_meta) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory exporting \"%s\"", path);
    goto out;
  }
  size_t pos = 0;
  int nt = 0;
  for (int i = 0; i < n; i++) {
    char name[64];
    size_t shape[2], off;
    int ndim;
    gpt_tensor_info(c, i, name, shape, &ndim, &off);
    const float *src = gpt_params(m) + off;
    size_t cols = ndim == 2 ? shape[1] : 1;
    int np = hf_parts(c, i, prefix ? prefix : "transformer.", parts + nt);
    for (int k = 0; k < np; k++, nt++) {
      hf_part *p = &parts[nt];
      size_t count = p->rows * cols;
      if (p->transpose) { /* ours (out, in) -> Conv1D's (in, out) */
        for (size_t r = 0; r < p->rows; r++)
          for (size_t j = 0; j < cols; j++)
            data[pos + j * p->rows + r] = src[r * cols + j];
      } else {
        memcpy(data + pos, src, count * sizeof(float));
      }
      const char *dt = json_string_value(json_object_get(dtypes, p->name));
      if (!dt) dt = most ? most : "F32";
      t[nt] = (st_tensor){
          p->name, {p->transpose ? cols : p->rows, p->transpose ? p->rows : cols},
          ndim,    data + pos,
          count,   strcmp(dt, "BF16") == 0 ? ST_BF16 : strcmp(dt, "F16") == 0 ? ST_F16 : ST_F32};
      src += count, pos += count;
    }
  }
  rc = ckpt__write_st(path, t, nt, st_meta, err);
out:
  json_decref(st_meta);
  json_decref(hf);
  free(parts);
  free(t);
  free(data);
  return rc;
}

json_t *trainer__hf_config(const ckpt_meta *meta, uint32_t eot)
{
  const gpt_config *c = &meta->config;
  json_t *hf = origin_hf(meta), *cfg = NULL;
  if (hf) { /* the imported config.json, with the rows the model has now */
    cfg = json_deep_copy(json_object_get(hf, "config"));
    json_object_set_new(cfg, "vocab_size", json_integer(c->padded_vocab));
    json_decref(hf);
    return cfg;
  }
  return json_pack(
      "{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:s, s:f, s:b, s:f, s:f, s:f, s:f, s:i, s:i}",
      "architectures", "GPT2LMHeadModel", "model_type", "gpt2", "vocab_size", c->padded_vocab,
      "n_positions", c->max_seq_len, "n_ctx", c->max_seq_len, "n_embd", c->n_embd, "n_layer",
      c->n_layer, "n_head", c->n_head, "activation_function", "gelu_new", "layer_norm_epsilon",
      1e-5, "tie_word_embeddings", 1, "initializer_range", 0.02, "resid_pdrop", 0.0, "embd_pdrop",
      0.0, "attn_pdrop", 0.0, "bos_token_id", (int)eot, "eos_token_id", (int)eot);
}

mn_status trainer__hf_origin_check(const ckpt_meta *meta, const char *ckpt, mn_error *err)
{
  if (!meta->origin[0]) return MN_OK;
  json_t *o = json_loads(meta->origin, 0, NULL), *hf = json_object_get(o, "hf");
  json_t *cfg = json_object_get(hf, "config"), *dtypes = json_object_get(hf, "dtypes"), *v;
  const char *dt = json_string_value(json_object_get(hf, "dtype"));
  const char *prefix = json_string_value(json_object_get(hf, "prefix")), *key;
  bool ok = json_is_object(cfg) && dt && prefix && json_is_object(dtypes) &&
            (!strcmp(prefix, "") || !strcmp(prefix, "transformer."));
  json_object_foreach(dtypes, key, v) ok = ok && json_is_string(v);
  mn_status rc = MN_OK;
  gpt_config g;
  int rows;
  mn_error e2 = {0};
  if (!ok) {
    rc = mn_error_set(err, MN_ERR_CORRUPT, "\"%s\": its origin is not an import's", ckpt);
  } else if (hf_config(cfg, "origin", &g, &rows, &e2) != MN_OK) {
    rc = mn_error_set(err, MN_ERR_CORRUPT, "\"%s\": its origin's config.json: %s", ckpt, e2.msg);
  } else {
    g.vocab_size = meta->config.vocab_size, g.padded_vocab = meta->config.padded_vocab;
    if (!gpt_config_equal(&g, &meta->config))
      rc = mn_error_set(err, MN_ERR_CORRUPT,
                        "\"%s\": its origin's config.json describes another model than its "
                        "weights (%s, %d layers of width %d)",
                        ckpt, gpt_arch_name(meta->config.arch), meta->config.n_layer,
                        meta->config.n_embd);
  }
  json_decref(o);
  return rc;
}
