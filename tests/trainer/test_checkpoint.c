/*
 * test_checkpoint.c -- safetensors checkpoints: a round trip is exact, resuming
 * from a checkpoint continues bit-identically, and every corruption class is
 * refused with a message that names the file and the problem; a header that claims
 * a model its file cannot hold is refused before anything is sized by the claim.
 */
#include "tests/test.h"
#include "trainer/trainer.h"

#include <fcntl.h>
#include <jansson.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

static const gpt_config tiny = {.max_seq_len = 16,
                                .vocab_size = 272,
                                .padded_vocab = 272,
                                .n_layer = 2,
                                .n_head = 2,
                                .n_embd = 16};
static char dir[64], path[128], opt_path[160], bad[160];
static int32_t tokens[2 * 8], targets[2 * 8];

static gpt *make(const gpt_config *c, uint64_t seed)
{
  gpt *m = NULL;
  mn_error err = {0};
  if (gpt_create(c, 2, 8, seed, kernels_cpu(), &m, &err) != MN_OK) {
    fprintf(stderr, "gpt_create: %s\n", err.msg);
    exit(1);
  }
  return m;
}

static const gpt_adamw opt = {.lr = 1e-3f,
                              .beta1 = 0.9f,
                              .beta2 = 0.95f,
                              .eps = 1e-8f,
                              .weight_decay = 0.1f,
                              .grad_clip = 1.0f};

static float step(gpt *m, int t)
{
  for (int i = 0; i < 16; i++) { /* a batch that changes with t, as real data does */
    tokens[i] = (int32_t)((i * 31 + t * 7) % 272);
    targets[i] = (int32_t)((i * 17 + t * 13) % 272);
  }
  gpt_zero_grad(m);
  float loss = gpt_forward(m, tokens, targets, 2, 8);
  gpt_backward(m);
  gpt_update(m, &opt, t);
  return loss;
}

static void save(gpt *m, int64_t t)
{
  mn_error err = {0};
  ckpt_meta meta = {.step = t};
  T_EQ_INT(tok_tags_add(&meta.tags, "spa", 257, &err), MN_OK);
  T_EQ_INT(tok_tags_add(&meta.tags, "tha", -1, &err), MN_OK);
  snprintf(meta.lineage, sizeof meta.lineage, "{\"parent\": null, \"note\": \"test\"}");
  T_EQ_INT(ckpt_save(path, m, &meta, &err), MN_OK);
  ckpt_opt_state st = {.step = t, .rng = 0xfeedULL};
  snprintf(st.weights_sha256, sizeof st.weights_sha256, "%s", meta.sha256);
  T_EQ_INT(ckpt_save_opt(opt_path, m, &st, &err), MN_OK);
}

/*
 * resume_partial_state -- a run that trains only the top block saves the moments of that
 * suffix alone; resumed into a fresh model, the state is that suffix again (nothing below),
 * and a thaw after the resume continues bit for bit like the uninterrupted run.
 */
static void resume_partial_state(void)
{
  int L = tiny.n_layer;
  gpt *a = make(&tiny, 6);
  float losses[11];
  for (int t = 1; t <= 10; t++) {
    gpt_set_trainable(a, t < 8 ? L - 1 : -1);
    losses[t] = step(a, t);
    if (t == 5) save(a, 5);
  }
  mn_error err = {0};
  ckpt_meta meta;
  T_EQ_INT(ckpt_read_meta(path, &meta, &err), MN_OK);
  gpt *b = make(&meta.config, 999);
  T_EQ_INT(ckpt_load(path, b, &meta, &err), MN_OK);
  ckpt_opt_state st;
  T_EQ_INT(ckpt_load_opt(opt_path, b, meta.sha256, &st, &err), MN_OK);
  T_EQ_INT(gpt_state_from(b), gpt_block_offset(&tiny, L - 1));
  bool same = true;
  for (int t = 6; t <= 10; t++) {
    gpt_set_trainable(b, t < 8 ? L - 1 : -1);
    float l = step(b, t);
    same = same && memcmp(&l, &losses[t], sizeof l) == 0;
  }
  T_CHECK_MSG(same, "resumed losses differ from the uninterrupted run");
  T_EQ_INT(gpt_state_from(b), 0);
  T_CHECK(memcmp(gpt_params(a), gpt_params(b), gpt_params_count(a) * sizeof(float)) == 0);
  T_CHECK(memcmp(gpt_adam_v(a), gpt_adam_v(b), gpt_params_count(a) * sizeof(float)) == 0);
  gpt_destroy(a);
  gpt_destroy(b);
}

static void round_trip_and_resume(void)
{
  gpt *a = make(&tiny, 5);
  float losses[11];
  for (int t = 1; t <= 5; t++)
    losses[t] = step(a, t);
  save(a, 5);
  for (int t = 6; t <= 10; t++)
    losses[t] = step(a, t);

  mn_error err = {0};
  ckpt_meta meta;
  T_EQ_INT(ckpt_read_meta(path, &meta, &err), MN_OK);
  T_EQ_INT(meta.step, 5);
  T_EQ_INT(meta.config.n_embd, 16);
  T_EQ_INT(tok_tag_of(&meta.tags, "tha"), 258);
  T_CONTAINS(meta.lineage, "\"note\"");
  gpt *b = make(&meta.config, 999); /* other initial weights: all must be replaced */
  T_EQ_INT(ckpt_load(path, b, &meta, &err), MN_OK);
  ckpt_opt_state st;
  T_EQ_INT(ckpt_load_opt(opt_path, b, meta.sha256, &st, &err), MN_OK);
  T_EQ_INT(st.step, 5);
  T_CHECK(st.rng == 0xfeedULL);
  bool same = true;
  for (int t = 6; t <= 10; t++) {
    float l = step(b, t);
    same = same && memcmp(&l, &losses[t], sizeof l) == 0;
  }
  T_CHECK_MSG(same, "resumed losses differ from the uninterrupted run");
  T_CHECK(memcmp(gpt_params(a), gpt_params(b), gpt_params_count(a) * sizeof(float)) == 0);
  gpt_destroy(a);
  gpt_destroy(b);
}

/* copy path to bad, then apply a change; returns bad */
static const char *corrupted(void (*change)(int fd, off_t size))
{
  mn_buf b;
  mn_buf_init(&b, 1 << 26);
  if (mn_buf_read_file(&b, path, NULL) != MN_OK) exit(1);
  int fd = open(bad, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (write(fd, b.data, b.len) != (ssize_t)b.len) exit(1);
  change(fd, (off_t)b.len);
  close(fd);
  mn_buf_fini(&b);
  return bad;
}

static void truncate_end(int fd, off_t size)
{
  (void)!ftruncate(fd, size - 10);
}
static void too_short(int fd, off_t size)
{
  (void)!ftruncate(fd, 4);
}
static void flip_data(int fd, off_t size)
{
  unsigned char c;
  (void)!pread(fd, &c, 1, size - 100);
  c ^= 0x40;
  (void)!pwrite(fd, &c, 1, size - 100);
}
static void flip_header(int fd, off_t size)
{
  (void)size;
  (void)!pwrite(fd, "@", 1, 8); /* the opening brace of the JSON */
}
static void huge_header(int fd, off_t size)
{
  (void)size;
  const unsigned char len[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0};
  (void)!pwrite(fd, len, 8, 0);
}

static void tamper_tags(int fd, off_t size)
{ /* "spa":257 -> "spa":259 in the header: same length, a different claim */
  char head[4096];
  ssize_t n = pread(fd, head, sizeof head - 1, 8);
  head[n > 0 ? n : 0] = '\0';
  char *at = strstr(head, "\\\"spa\\\":257");
  if (at) (void)!pwrite(fd, "9", 1, 8 + (at - head) + 10);
  (void)size;
}

static void refused(const char *file, gpt *m, const char *why)
{
  mn_error err = {0};
  ckpt_meta meta;
  mn_status rc = ckpt_load(file, m, &meta, &err);
  T_CHECK_MSG(rc == MN_ERR_CORRUPT, "%s: got %s (%s)", why, mn_status_name(rc), err.msg);
  T_CONTAINS(err.msg, file);
  T_CONTAINS(err.msg, why);
}

static void corruption_refused(void)
{
  gpt *m = make(&tiny, 1);
  save(m, 1);
  refused(corrupted(truncate_end), m, "truncated");
  refused(corrupted(too_short), m, "too short");
  refused(corrupted(flip_data), m, "SHA-256");
  refused(corrupted(flip_header), m, "not a JSON object");
  refused(corrupted(huge_header), m, "header length");
  refused(corrupted(tamper_tags), m, "SHA-256"); /* the checksum covers the metadata too */
  refused(opt_path, m, "not a mnemo-gpt file");
  /* the right file for another model */
  gpt_config wider = tiny;
  wider.n_embd = 32;
  gpt *w = make(&wider, 1);
  refused(path, w, "is not this one");
  /* optimizer state of other weights */
  mn_error err = {0};
  ckpt_opt_state st;
  T_EQ_INT(ckpt_load_opt(opt_path, m,
                         "0000000000000000000000000000000000000000000000000000000000000000", &st,
                         &err),
           MN_ERR_CORRUPT);
  T_CONTAINS(err.msg, "belongs to other weights");
  /* the optimizer file's step and the sampler's state are under its checksum: a digit of
   * "rng" changed (the same length) is refused, not resumed from another stream */
  {
    mn_buf b;
    mn_buf_init(&b, 1 << 26);
    T_EQ_INT(mn_buf_read_file(&b, opt_path, &err), MN_OK);
    char *at = NULL;
    for (size_t i = 8; !at && i + 8 < b.len && i < 4096; i++)
      if (memcmp(b.data + i, "\"rng\":\"", 7) == 0) at = b.data + i;
    T_CHECK(at != NULL);
    if (at) at[7] = at[7] == '1' ? '2' : '1';
    int fd = open(bad, O_RDWR | O_CREAT | O_TRUNC, 0600);
    T_CHECK(write(fd, b.data, b.len) == (ssize_t)b.len);
    close(fd);
    mn_buf_fini(&b);
    ckpt_meta cm;
    T_EQ_INT(ckpt_read_meta(path, &cm, &err), MN_OK);
    T_EQ_INT(ckpt_load_opt(bad, m, cm.sha256, &st, &err), MN_ERR_CORRUPT);
    T_CONTAINS(err.msg, "SHA-256");
  }
  /* a missing file is an I/O error naming it */
  ckpt_meta meta;
  T_EQ_INT(ckpt_load("/nonexistent/model.safetensors", m, &meta, &err), MN_ERR_IO);
  T_CONTAINS(err.msg, "/nonexistent/model.safetensors");
  gpt_destroy(m);
  gpt_destroy(w);
}

/* ---------------------------------------------------------------- hostile headers */

/* the model the hostile headers claim: 12 layers of width 1024 (610 MB of weights) */
static const gpt_config big = {.max_seq_len = 1024,
                               .vocab_size = 272,
                               .padded_vocab = 272,
                               .n_layer = 12,
                               .n_head = 16,
                               .n_embd = 1024};

/* the backend's allocations, counted; a request over 64 MiB gets nothing (the test's own
 * cap: old code sized by a false claim fails here instead of taking the memory) */
static size_t alloc_total, alloc_largest;
static void *counting_alloc(size_t bytes)
{
  alloc_total += bytes;
  alloc_largest = bytes > alloc_largest ? bytes : alloc_largest;
  return bytes > (64u << 20) ? NULL : kernels_cpu()->mem_alloc(bytes);
}

/* load_as_worker -- what the worker does with a checkpoint it is given (scoring_model in
 * mnemo.c): read its meta, create a model of that shape, load the weights into it */
static mn_status load_as_worker(const char *file, const kernels_backend *k, mn_error *err)
{
  ckpt_meta meta;
  gpt *m = NULL;
  mn_status rc = ckpt_read_meta(file, &meta, err);
  int T = rc == MN_OK && meta.config.max_seq_len < 8 ? meta.config.max_seq_len : 8;
  if (rc == MN_OK && (rc = gpt_create(&meta.config, 1, T, 0, k, &m, err)) == MN_OK)
    rc = ckpt_load(file, m, &meta, err);
  gpt_destroy(m);
  return rc;
}

/* path's header edited by edit, its data kept, written to bad (a header of any length) */
static const char *with_header(void (*edit)(json_t *h))
{
  mn_buf b;
  mn_buf_init(&b, 1 << 26);
  if (mn_buf_read_file(&b, path, NULL) != MN_OK) exit(1);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--)
    hlen = hlen << 8 | (unsigned char)b.data[i];
  json_t *h = json_loadb(b.data + 8, hlen, 0, NULL);
  edit(h);
  char *text = json_dumps(h, JSON_COMPACT);
  size_t n = strlen(text), padded = (n + 7) / 8 * 8;
  unsigned char len8[8];
  for (int i = 0; i < 8; i++)
    len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
  FILE *f = fopen(bad, "wb");
  fwrite(len8, 8, 1, f);
  fwrite(text, n, 1, f);
  fwrite("        ", padded - n, 1, f);
  fwrite(b.data + 8 + hlen, b.len - 8 - hlen, 1, f);
  fclose(f);
  free(text);
  json_decref(h);
  mn_buf_fini(&b);
  return bad;
}

static void claim_big_config(json_t *h)
{
  json_t *meta = json_object_get(h, "__metadata__");
  json_object_set_new(meta, "config",
                      json_string("{\"max_seq_len\":1024,\"n_embd\":1024,\"n_head\":16,"
                                  "\"n_layer\":12,\"padded_vocab\":272,\"vocab_size\":272}"));
}

/* the whole header consistent with the big model (its tensor table too); only the data is
 * the tiny model's */
static void claim_big_table(json_t *h)
{
  claim_big_config(h);
  for (int i = 0; i < gpt_num_tensors(&tiny); i++) {
    char name[64];
    size_t shape[2], off;
    int ndim;
    gpt_tensor_info(&tiny, i, name, shape, &ndim, &off);
    json_object_del(h, name);
  }
  uint64_t at = 0;
  for (int i = 0; i < gpt_num_tensors(&big); i++) {
    char name[64];
    size_t shape[2], off;
    int ndim;
    gpt_tensor_info(&big, i, name, shape, &ndim, &off);
    uint64_t bytes = shape[0] * (ndim == 2 ? shape[1] : 1) * sizeof(float);
    json_t *sh = ndim == 2 ? json_pack("[I,I]", (json_int_t)shape[0], (json_int_t)shape[1])
                           : json_pack("[I]", (json_int_t)shape[0]);
    json_object_set_new(h, name,
                        json_pack("{s:s, s:o, s:[I,I]}", "dtype", "F32", "shape", sh,
                                  "data_offsets", (json_int_t)at, (json_int_t)(at + bytes)));
    at += bytes;
  }
}

/* the tiny model's config, but a tensor table that does not match it */
static void wrong_table(json_t *h)
{
  json_object_set_new(json_object_get(h, "wte"), "shape", json_pack("[i,i]", 272, 1024));
}

static void hostile(const char *file, const char *why, const char *why2)
{
  kernels_backend counting = *kernels_cpu();
  counting.mem_alloc = counting_alloc;
  mn_error err = {0};
  alloc_total = alloc_largest = 0;
  double t0 = mn_monotonic_ms();
  mn_status rc = load_as_worker(file, &counting, &err);
  double ms = mn_monotonic_ms() - t0;
  T_CHECK_MSG(rc == MN_ERR_CORRUPT, "%s: got %s (%s)", why, mn_status_name(rc), err.msg);
  T_CONTAINS(err.msg, file);
  T_CONTAINS(err.msg, why);
  T_CONTAINS(err.msg, why2);
  /* refused before a model was created: nothing asked of the backend at all */
  T_CHECK_MSG(alloc_total == 0, "%s: %zu bytes allocated first (the largest %zu)", why, alloc_total,
              alloc_largest);
  fprintf(stderr, "   refused in %.1f ms: %s\n", ms, err.msg);
}

/*
 * A small file whose header claims a big model is refused by ckpt_read_meta, which every
 * caller reads before sizing a model, naming the file and the mismatch: once for a false
 * config (the worker used to create a 610 MB model and spend seconds initialising it before
 * "wrong shape"), once for a header that is consistent throughout except with the file's
 * size, once for a tensor table that does not match the config.
 */
static void hostile_header_refused_before_allocation(void)
{
  gpt *m = make(&tiny, 1);
  save(m, 1);
  gpt_destroy(m);
  hostile(with_header(claim_big_config), "describes 12 layers of width 1024", "the file holds");
  hostile(with_header(claim_big_table), "describes 12 layers of width 1024", "the file holds");
  hostile(with_header(wrong_table), "wrong shape", "[272,1024], expected [272,16]");
  /* the intact file still loads through the same path */
  kernels_backend counting = *kernels_cpu();
  counting.mem_alloc = counting_alloc;
  mn_error err = {0};
  alloc_total = 0;
  T_EQ_INT(load_as_worker(path, &counting, &err), MN_OK);
  T_CHECK(alloc_total > 0);
}

/* import-llmc: a small file whose llm.c header claims the big model is refused by its size
 * before a model of that shape is created; checked in a child under an address-space limit
 * of 256 MiB more than it uses (not under ASan, whose shadow memory the limit would break) */
static void import_llmc_claim_checked_first(void)
{
  char file[160], out[160];
  snprintf(file, sizeof file, "%s/claims-big.bin", dir);
  snprintf(out, sizeof out, "%s/claims-big.safetensors", dir);
  FILE *f = fopen(file, "wb");
  int32_t hd[256] = {20240326, 3, 1024, 272, 12, 16, 1024, 272};
  fwrite(hd, sizeof hd, 1, f);
  float zeros[4096] = {0};
  fwrite(zeros, sizeof zeros, 1, f);
  fclose(f);
  pid_t pid = fork();
  if (pid == 0) {
    int before = t_failed_checks;
#ifndef UNDER_ASAN
    long pages = 0;
    FILE *statm = fopen("/proc/self/statm", "r");
    if (!statm || fscanf(statm, "%ld", &pages) != 1) _exit(3);
    fclose(statm);
    rlim_t cap = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)256 << 20);
    struct rlimit rl = {cap, cap};
    if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(3);
#endif
    mn_error err = {0};
    double t0 = mn_monotonic_ms();
    mn_status rc = import_llmc(file, out, &err);
    T_CHECK_MSG(rc == MN_ERR_CORRUPT, "got %s (%s)", mn_status_name(rc), err.msg);
    T_CONTAINS(err.msg, file);
    T_CONTAINS(err.msg, "12 layers of width 1024");
    T_CHECK(access(out, F_OK) != 0); /* nothing written */
    fprintf(stderr, "   refused in %.1f ms: %s\n", mn_monotonic_ms() - t0, err.msg);
    _exit(t_failed_checks == before ? 0 : 1);
  }
  int status = 0;
  T_CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
  T_CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child: status %d", status);
  unlink(file);
}

/* a shard's section against a checkpoint's tags: each refusal names the language, both
 * files and both sides' tags (it used to say "the checkpoint -1" for a language the
 * checkpoint lacks) */
static void section_against_checkpoint(void)
{
  ckpt_meta meta = {.config = tiny}; /* vocabulary 272 */
  mn_error err = {0};
  T_EQ_INT(tok_tags_add(&meta.tags, "spa", 257, &err), MN_OK);
  T_EQ_INT(tok_tags_add(&meta.tags, "tha", 258, &err), MN_OK);
  const char *sh = "/data/jobs/7/fresh.shard", *ck = "/data/ckpt/3/model.safetensors";
  shard_section kat_out = {.code = "kat", .tag = 300}, kat_spa = {.code = "kat", .tag = 257},
                spa_moved = {.code = "spa", .tag = 258}, kat_ok = {.code = "kat", .tag = 260},
                spa_ok = {.code = "spa", .tag = 257};
  T_EQ_INT(shard_section_fits(&kat_out, sh, &meta, ck, &err), MN_ERR_INPUT);
  T_CONTAINS(err.msg, "\"kat\"");
  T_CONTAINS(err.msg, sh);
  T_CONTAINS(err.msg, ck);
  T_CONTAINS(err.msg, "is not one the checkpoint");
  T_CONTAINS(err.msg, "tag 300 is outside that model's vocabulary of 272");
  T_CHECK_MSG(strstr(err.msg, "-1") == NULL, "%s", err.msg);
  T_EQ_INT(shard_section_fits(&kat_spa, sh, &meta, ck, &err), MN_ERR_INPUT);
  T_CONTAINS(err.msg, ck);
  T_CONTAINS(err.msg, "has tag 257, which the checkpoint");
  T_CONTAINS(err.msg, "gives to \"spa\"; it has no tag for \"kat\"");
  T_EQ_INT(shard_section_fits(&spa_moved, sh, &meta, ck, &err), MN_ERR_INPUT);
  T_CONTAINS(err.msg, "\"spa\" has tag 258 in the shard");
  T_CONTAINS(err.msg, "but tag 257 in the checkpoint");
  T_EQ_INT(shard_section_fits(&kat_ok, sh, &meta, ck, &err), MN_OK); /* a new language */
  T_EQ_INT(shard_section_fits(&spa_ok, sh, &meta, ck, &err), MN_OK);
}

/* the file is standard safetensors: 8-byte length, JSON, data right after */
static void format_is_safetensors(void)
{
  gpt *m = make(&tiny, 3);
  save(m, 0);
  mn_buf b;
  mn_buf_init(&b, 1 << 26);
  T_EQ_INT(mn_buf_read_file(&b, path, NULL), MN_OK);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--)
    hlen = hlen << 8 | (unsigned char)b.data[i];
  T_EQ_INT(hlen % 8, 0);
  T_EQ_INT(b.len, 8 + hlen + gpt_params_count(m) * sizeof(float));
  T_CHECK(memcmp(b.data + 8 + hlen, gpt_params(m), gpt_params_count(m) * sizeof(float)) == 0);
  char *header = strndup(b.data + 8, hlen);
  T_CONTAINS(header, "\"h.1.mlp.c_proj.weight\":{\"dtype\":\"F32\",\"shape\":[16,64]");
  free(header);
  mn_buf_fini(&b);
  gpt_destroy(m);
}

/* export-hf: names, shapes, the Conv1D transpose, and a config GPT2LMHeadModel reads */
static void export_hf_round_trip(void)
{
  gpt *m = make(&tiny, 11);
  save(m, 3);
  char out[160], file[200];
  snprintf(out, sizeof out, "%s/hf", dir);
  mn_error err = {0};
  T_EQ_INT(export_hf(path, out, &err), MN_OK);
  /* all or nothing: a folder that holds something is not written into, and a failed export
   * leaves no folder and no temporary one */
  T_EQ_INT(export_hf(path, out, &err), MN_ERR_INPUT);
  T_CONTAINS(err.msg, "not empty");
  char none[200], tmp[240];
  snprintf(none, sizeof none, "%s/hf-none", dir);
  T_CHECK(export_hf("/nonexistent/model.safetensors", none, &err) != MN_OK);
  snprintf(tmp, sizeof tmp, "%s.tmp.%d", none, (int)getpid());
  T_CHECK(access(none, F_OK) != 0 && access(tmp, F_OK) != 0);
  snprintf(file, sizeof file, "%s/config.json", out);
  json_error_t je;
  json_t *cfg = json_load_file(file, 0, &je);
  T_CHECK(cfg != NULL);
  T_EQ_INT(json_integer_value(json_object_get(cfg, "n_embd")), 16);
  T_EQ_INT(json_integer_value(json_object_get(cfg, "vocab_size")), 272);
  T_EQ_STR(json_string_value(json_object_get(cfg, "activation_function")), "gelu_new");
  T_CHECK(json_is_true(json_object_get(cfg, "tie_word_embeddings")));
  json_decref(cfg);
  snprintf(file, sizeof file, "%s/model.safetensors", out);
  mn_buf b;
  mn_buf_init(&b, 1 << 26);
  T_EQ_INT(mn_buf_read_file(&b, file, &err), MN_OK);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--)
    hlen = hlen << 8 | (unsigned char)b.data[i];
  json_t *h = json_loadb(b.data + 8, hlen, 0, &je);
  T_EQ_INT(json_object_size(h), (size_t)gpt_num_tensors(&tiny) + 1);
  /* c_attn: ours (3C, C) is HF's (C, 3C): element [r][k] of ours is [k][r] of theirs */
  json_t *e = json_object_get(h, "transformer.h.1.attn.c_attn.weight");
  T_EQ_INT(json_integer_value(json_array_get(json_object_get(e, "shape"), 0)), 16);
  T_EQ_INT(json_integer_value(json_array_get(json_object_get(e, "shape"), 1)), 48);
  size_t start = (size_t)json_integer_value(json_array_get(json_object_get(e, "data_offsets"), 0));
  const float *theirs = (const float *)(const void *)(b.data + 8 + hlen + start);
  char name[64];
  size_t shape[2], off;
  int ndim;
  gpt_tensor_info(&tiny, 2 + 12 + 2, name, shape, &ndim, &off);
  T_EQ_STR(name, "h.1.attn.c_attn.weight");
  const float *ours = gpt_params(m) + off;
  bool same = true;
  for (size_t r = 0; r < 48; r++)
    for (size_t k = 0; k < 16; k++)
      same = same && ours[r * 16 + k] == theirs[k * 48 + r];
  T_CHECK(same);
  /* embeddings are not transposed */
  e = json_object_get(h, "transformer.wte.weight");
  T_CHECK(e != NULL);
  T_CHECK(json_object_get(h, "transformer.wpe.weight") != NULL);
  T_CHECK(json_object_get(h, "transformer.ln_f.weight") != NULL);
  T_CHECK(json_object_get(h, "transformer.h.0.mlp.c_proj.bias") != NULL);
  start = (size_t)json_integer_value(json_array_get(json_object_get(e, "data_offsets"), 0));
  T_CHECK(memcmp(b.data + 8 + hlen + start, gpt_params(m), 272 * 16 * sizeof(float)) == 0);
  json_decref(h);
  mn_buf_fini(&b);
  gpt_destroy(m);
}

/* import-llmc: a file written in llm.c's layout (stacked over layers) comes back exactly */
static void import_llmc_exact(void)
{
  gpt *m = make(&tiny, 21);
  char file[160], out[160];
  snprintf(file, sizeof file, "%s/llmc.bin", dir);
  snprintf(out, sizeof out, "%s/imported.safetensors", dir);
  FILE *f = fopen(file, "wb");
  int32_t hd[256] = {20240326, 3, 16, 272, 2, 2, 16, 272};
  fwrite(hd, sizeof hd, 1, f);
  const float *p = gpt_params(m);
  fwrite(p, sizeof(float), (272 + 16) * 16, f); /* wte, wpe */
  for (int t = 0; t < 12; t++)
    for (int l = 0; l < 2; l++) {
      char name[64];
      size_t shape[2], off;
      int ndim;
      gpt_tensor_info(&tiny, 2 + l * 12 + t, name, shape, &ndim, &off);
      fwrite(p + off, sizeof(float), shape[0] * (ndim == 2 ? shape[1] : 1), f);
    }
  fwrite(p + gpt_block_offset(&tiny, 2), sizeof(float), 32, f);
  fclose(f);
  mn_error err = {0};
  T_EQ_INT(import_llmc(file, out, &err), MN_OK);
  gpt *b = make(&tiny, 1);
  ckpt_meta meta;
  T_EQ_INT(ckpt_load(out, b, &meta, &err), MN_OK);
  T_CHECK(memcmp(gpt_params(m), gpt_params(b), gpt_params_count(m) * sizeof(float)) == 0);
  /* a wrong magic is refused by name */
  f = fopen(file, "r+b");
  fwrite("XXXX", 4, 1, f);
  fclose(f);
  T_EQ_INT(import_llmc(file, out, &err), MN_ERR_CORRUPT);
  T_CONTAINS(err.msg, "not an llm.c fp32 checkpoint");
  unlink(file), unlink(out);
  gpt_destroy(m);
  gpt_destroy(b);
}

int main(void)
{
  snprintf(dir, sizeof dir, "/tmp/mnemo-test-ckpt-XXXXXX");
  if (!mkdtemp(dir)) return 1;
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  snprintf(opt_path, sizeof opt_path, "%s.opt", path);
  snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
  T_RUN(round_trip_and_resume);
  T_RUN(resume_partial_state);
  T_RUN(corruption_refused);
  T_RUN(format_is_safetensors);
  T_RUN(export_hf_round_trip);
  T_RUN(import_llmc_exact);
  T_RUN(hostile_header_refused_before_allocation);
  T_RUN(import_llmc_claim_checked_first);
  T_RUN(section_against_checkpoint);
  char hf[200];
  snprintf(hf, sizeof hf, "%s/hf/config.json", dir);
  unlink(hf);
  snprintf(hf, sizeof hf, "%s/hf/model.safetensors", dir);
  unlink(hf);
  snprintf(hf, sizeof hf, "%s/hf", dir);
  rmdir(hf);
  unlink(path), unlink(opt_path), unlink(bad), rmdir(dir);
  return T_DONE();
}
