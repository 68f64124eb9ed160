/*
 * test_replay.c -- the replay store: reservoirs fill then sample, sampling stays
 * uniform over every window ever offered across refreshes (a chi-square test with
 * fixed seeds, and the same test failing when `seen` is not carried over), an
 * absorb that fails or crashes leaves the old file, and a damaged file is refused; a store
 * names its windows' tokenizer and refuses another's, and version 1 files are still read;
 * the samplers over languages on hand-worked examples.
 */
#include "replay/replay.h"
#include "tests/test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define W 2 /* tokens per window in these tests: [id, id] */

/* two tokenizers' identities (tok_sha256), alike in their first 12 hex digits */
#define TOK_A "aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111"
#define TOK_B "aaaaaaaaaaaa2222222222222222222222222222222222222222222222222222"

static uint32_t *windows(int first, int n)
{
  uint32_t *w = malloc(sizeof(uint32_t) * W * (size_t)n);
  for (int i = 0; i < n; i++)
    w[W * i] = w[W * i + 1] = (uint32_t)(first + i);
  return w;
}

static void fills_then_samples(void)
{
  replay_store s;
  mn_error err = {0};
  replay_store_init(&s, W, TOK_A);
  uint32_t *a = windows(0, 2), *b = windows(2, 5);
  T_EQ_INT(replay_store_offer(&s, "swh", 3, a, 2, &err), MN_OK);
  const replay_lang *l = replay_store_find(&s, "swh");
  T_CHECK(l && l->count == 2 && l->seen == 2);
  T_EQ_INT(replay_store_offer(&s, "swh", 3, b, 5, &err), MN_OK);
  l = replay_store_find(&s, "swh");
  T_CHECK(l && l->count == 3 && l->seen == 7);
  bool from_offers = true;
  for (uint32_t i = 0; l && i < l->count; i++)
    from_offers =
        from_offers && l->windows[W * i] < 7 && l->windows[W * i] == l->windows[W * i + 1];
  T_CHECK(from_offers);
  /* a second language goes in code order; a different capacity for a known one is refused */
  T_EQ_INT(replay_store_offer(&s, "amh", 4, a, 2, &err), MN_OK);
  T_CHECK(s.nlangs == 2 && strcmp(s.langs[0].code, "amh") == 0);
  T_EQ_INT(replay_store_offer(&s, "swh", 5, a, 2, &err), MN_ERR_INPUT);
  T_CHECK(strstr(err.msg, "capacity of 3") != NULL);
  T_EQ_INT(replay_store_offer(&s, "a-code-far-too-long", 4, a, 2, &err), MN_ERR_INPUT);
  free(a), free(b);
  replay_store_fini(&s);
}

/*
 * chi_square -- 2000 reservoirs of 10 (one language each, so each has its own seed) are
 * offered windows 0..199 in 5 refreshes of 40, the store encoded and decoded between
 * refreshes as a promotion would save and load it.  Returns the chi-square of how often
 * each window is held against the uniform 100; with forget_seen the decoded store has
 * its `seen` reset, as a store that did not persist it would.
 */
static double chi_square(bool forget_seen, double *first_share)
{
  enum { TRIALS = 2000, CAP = 10, N = 200, CHUNK = 40 };
  static long held[N];
  memset(held, 0, sizeof held);
  mn_buf b;
  mn_buf_init(&b, 1 << 20);
  uint32_t *all = windows(0, N);
  mn_error err = {0};
  for (int t = 0; t < TRIALS; t++) {
    char code[REPLAY_CODE_SIZE];
    snprintf(code, sizeof code, "t%04d", t);
    replay_store s;
    replay_store_init(&s, W, TOK_A);
    for (int c = 0; c < N / CHUNK; c++) {
      if (replay_store_offer(&s, code, CAP, all + W * c * CHUNK, CHUNK, &err) != MN_OK ||
          replay_store_encode(&s, &b, &err) != MN_OK) {
        T_CHECK_MSG(false, "%s", err.msg);
        return INFINITY;
      }
      replay_store_fini(&s);
      if (replay_store_decode(b.data, b.len, "memory", &s, &err) != MN_OK) {
        T_CHECK_MSG(false, "%s", err.msg);
        return INFINITY;
      }
      if (forget_seen) s.langs[0].seen = s.langs[0].count;
    }
    for (uint32_t i = 0; i < s.langs[0].count; i++)
      held[s.langs[0].windows[W * i]]++;
    replay_store_fini(&s);
  }
  double x2 = 0, e = (double)TRIALS * CAP / N;
  long first = 0;
  for (int i = 0; i < N; i++) {
    x2 += (held[i] - e) * (held[i] - e) / e;
    if (i < CHUNK) first += held[i];
  }
  *first_share = (double)first / ((double)TRIALS * CAP);
  free(all);
  mn_buf_fini(&b);
  return x2;
}

static void uniform_across_refreshes(void)
{
  double first;
  double x2 = chi_square(false, &first);
  /* 199 degrees of freedom: p = 0.001 at 259 */
  T_CHECK_MSG(x2 < 259, "chi-square %.1f over 200 windows", x2);
  T_CHECK_MSG(fabs(first - 0.2) < 0.02, "the first refresh holds %.3f of the slots, not 0.2",
              first);
  /* the same test has the power to see a store that forgets how much it has seen */
  double x2_bad = chi_square(true, &first);
  T_CHECK_MSG(x2_bad > 1000, "chi-square %.1f when seen is not persisted", x2_bad);
  fprintf(stderr, "  chi-square %.1f (199 degrees of freedom); %.1f when seen is forgotten\n", x2,
          x2_bad);
}

static char path[] = "/tmp/mnemo-test-replay-XXXXXX";

static void absorb_round_trip(void)
{
  mn_error err = {0};
  uint32_t *a = windows(0, 30), *b = windows(100, 30);
  replay_offer first[] = {{"swh", a, 30}, {"tha", b, 5}};
  unlink(path);
  T_EQ_INT(replay_store_absorb(path, TOK_A, TOK_A, W, 8, first, 2, &err), MN_OK);
  replay_offer second[] = {{"swh", b, 30}};
  T_EQ_INT(replay_store_absorb(path, TOK_A, TOK_A, W, 8, second, 1, &err), MN_OK);
  replay_store s;
  T_EQ_INT(replay_store_load(path, &s, &err), MN_OK);
  const replay_lang *l = replay_store_find(&s, "swh");
  T_CHECK(l && l->capacity == 8 && l->count == 8 && l->seen == 60);
  l = replay_store_find(&s, "tha");
  T_CHECK(l && l->count == 5 && l->seen == 5 && l->windows[0] == 100);
  replay_store_fini(&s);
  /* another window length is refused and changes nothing */
  T_EQ_INT(replay_store_absorb(path, TOK_A, TOK_A, W + 1, 8, second, 1, &err), MN_ERR_INPUT);
  T_CHECK(strstr(err.msg, "windows of 2 tokens") != NULL);
  free(a), free(b);
}

static bool same_file(const char *file, const mn_buf *want)
{
  mn_buf got;
  mn_error err = {0};
  mn_buf_init(&got, 1 << 24);
  bool same = mn_buf_read_file(&got, file, &err) == MN_OK && got.len == want->len &&
              memcmp(got.data, want->data, got.len) == 0;
  mn_buf_fini(&got);
  return same;
}

static const char *crash_path;
static void crash_before_rename(const char *tmp, const char *target)
{
  (void)target;
  crash_path = tmp;
  T_EQ_INT(access(tmp, F_OK), 0); /* the new store is complete beside the old one */
}

static void absorb_is_atomic(void)
{
  mn_error err = {0};
  mn_buf before;
  mn_buf_init(&before, 1 << 24);
  T_EQ_INT(mn_buf_read_file(&before, path, &err), MN_OK);
  uint32_t *c = windows(500, 50);
  replay_offer more[] = {{"swh", c, 50}};
  mn_fault_kind kinds[] = {MN_FAULT_WRITE, MN_FAULT_FSYNC, MN_FAULT_ALLOC};
  for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
    mn_fault_arm(kinds[k], 1);
    T_CHECK(replay_store_absorb(path, TOK_A, TOK_A, W, 8, more, 1, &err) != MN_OK);
    mn_fault_arm(kinds[k], 0);
    T_CHECK_MSG(same_file(path, &before), "fault %zu changed the store", k);
  }
  /* the process dies after the new file is written, before it is renamed: what a restart
   * finds is the old store (the temporary file is the new one, never read) */
  mn_atomic__before_rename = crash_before_rename;
  T_EQ_INT(replay_store_absorb(path, TOK_A, TOK_A, W, 8, more, 1, &err), MN_OK);
  mn_atomic__before_rename = NULL;
  T_CHECK(crash_path != NULL);
  replay_store s;
  T_EQ_INT(replay_store_load(path, &s, &err), MN_OK);
  const replay_lang *l = replay_store_find(&s, "swh");
  T_CHECK(l && l->seen == 110); /* the absorb itself completed */
  replay_store_fini(&s);
  free(c);
  mn_buf_fini(&before);
}

static void damage_is_refused(void)
{
  mn_error err = {0};
  mn_buf b;
  mn_buf_init(&b, 1 << 24);
  T_EQ_INT(mn_buf_read_file(&b, path, &err), MN_OK);
  replay_store s;
  b.data[b.len / 2] ^= 0x01; /* one bit, in the windows */
  T_EQ_INT(replay_store_decode(b.data, b.len, path, &s, &err), MN_ERR_CORRUPT);
  T_CHECK(strstr(err.msg, "checksum") != NULL && strstr(err.msg, path) != NULL);
  b.data[b.len / 2] ^= 0x01;
  T_EQ_INT(replay_store_decode(b.data, b.len - 7, path, &s, &err), MN_ERR_CORRUPT);
  T_CHECK(strstr(err.msg, "truncated") != NULL);
  b.data[0] = 'X';
  T_EQ_INT(replay_store_decode(b.data, b.len, path, &s, &err), MN_ERR_CORRUPT);
  T_CHECK(strstr(err.msg, "not a replay store") != NULL);
  mn_buf_fini(&b);
}

/* file_sum -- the trailing SHA-256 of a store's bytes made right after an edit */
static void file_sum(mn_buf *b)
{
  mn_error err = {0};
  char hex[MN_SHA256_HEX_LEN + 1];
  T_EQ_INT(mn_sha256_hex(b->data, b->len - MN_SHA256_LEN, hex, &err), MN_OK);
  T_EQ_INT(mn_hex_decode(hex, (uint8_t *)b->data + b->len - MN_SHA256_LEN, MN_SHA256_LEN),
           MN_SHA256_LEN);
}

static void names_its_tokenizer(void)
{
  mn_error err = {0};
  char p2[] = "/tmp/mnemo-test-replay-tok-XXXXXX";
  int fd = mkstemp(p2);
  close(fd);
  unlink(p2);
  uint32_t *a = windows(0, 4);
  replay_offer o[] = {{"swh", a, 4}};
  T_EQ_INT(replay_store_absorb(p2, TOK_A, TOK_A, W, 8, o, 1, &err), MN_OK);
  replay_store s;
  T_EQ_INT(replay_store_load(p2, &s, &err), MN_OK);
  T_EQ_STR(s.tok_sha256, TOK_A);
  replay_store_fini(&s);
  mn_buf before;
  mn_buf_init(&before, 1 << 20);
  T_EQ_INT(mn_buf_read_file(&before, p2, &err), MN_OK);
  T_EQ_INT(mn_get_le32((uint8_t *)before.data + 8), 2);
  /* windows of another tokenizer: refused, naming the store and both (enough to differ) */
  T_EQ_INT(replay_store_absorb(p2, TOK_B, TOK_A, W, 8, o, 1, &err), MN_ERR_INPUT);
  T_CHECK_MSG(strstr(err.msg, p2) && strstr(err.msg, "aaaaaaaaaaaa1111") &&
                  strstr(err.msg, "aaaaaaaaaaaa2222"),
              "%s", err.msg);
  T_CHECK(strstr(err.detail, TOK_A) && strstr(err.detail, TOK_B));
  T_CHECK(same_file(p2, &before));
  /* a store that names no tokenizer is not written */
  replay_store_init(&s, W, NULL);
  mn_buf b;
  mn_buf_init(&b, 1 << 20);
  T_EQ_INT(replay_store_encode(&s, &b, &err), MN_ERR_INPUT);
  replay_store_fini(&s);
  /* ... nor read: an all-zero tokenizer with a good checksum */
  T_EQ_INT(mn_buf_read_file(&b, p2, &err), MN_OK);
  memset(b.data + 32, 0, 32);
  file_sum(&b);
  T_EQ_INT(replay_store_decode(b.data, b.len, "zero", &s, &err), MN_ERR_CORRUPT);
  T_CHECK(strstr(err.msg, "names no tokenizer") != NULL);

  /* version 1: the same file without the 32 bytes of the tokenizer */
  mn_buf v1;
  mn_buf_init(&v1, 1 << 20);
  T_EQ_INT(mn_buf_append(&v1, before.data, 32, &err), MN_OK);
  T_EQ_INT(mn_buf_append(&v1, before.data + 64, before.len - 64, &err), MN_OK);
  mn_put_le32((uint8_t *)v1.data + 8, 1);
  file_sum(&v1);
  T_EQ_INT(replay_store_decode(v1.data, v1.len, "v1", &s, &err), MN_OK);
  T_EQ_STR(s.tok_sha256, ""); /* the caller's to resolve: the byte tokenizer */
  const replay_lang *l = replay_store_find(&s, "swh");
  T_CHECK(l && l->count == 4 && l->windows[W * 3] == 3);
  replay_store_fini(&s);
  T_EQ_INT(mn_write_file_atomic(p2, v1.data, v1.len, 0644, &err), MN_OK);
  /* a version 1 store is what the caller says it is (v1_tok_sha256) */
  T_EQ_INT(replay_store_absorb(p2, TOK_B, TOK_A, W, 8, o, 1, &err), MN_ERR_INPUT);
  T_CHECK(strstr(err.msg, "aaaaaaaaaaaa1111") != NULL);
  T_EQ_INT(replay_store_absorb(p2, TOK_A, TOK_A, W, 8, o, 1, &err), MN_OK);
  T_EQ_INT(replay_store_load(p2, &s, &err), MN_OK); /* now version 2, naming it */
  T_EQ_STR(s.tok_sha256, TOK_A);
  l = replay_store_find(&s, "swh");
  T_CHECK(l && l->seen == 8);
  replay_store_fini(&s);
  unlink(p2);
  free(a);
  mn_buf_fini(&b), mn_buf_fini(&v1), mn_buf_fini(&before);
}

static bool near(double a, double b)
{
  return fabs(a - b) < 1e-9;
}

static void temperature_shares(void)
{
  mn_error err = {0};
  double n[] = {100, 1, 0}, q[3], boost[] = {1, 2, 5};
  T_EQ_INT(replay_shares_temperature(n, NULL, 3, 0.5, q, &err), MN_OK);
  T_CHECK(near(q[0], 10.0 / 11) && near(q[1], 1.0 / 11) && q[2] == 0); /* sqrt: 10 to 1 */
  T_EQ_INT(replay_shares_temperature(n, NULL, 3, 1.0, q, &err), MN_OK);
  T_CHECK(near(q[0], 100.0 / 101));
  T_EQ_INT(replay_shares_temperature(n, boost, 3, 0.0, q, &err), MN_OK);
  T_CHECK(near(q[0], 1.0 / 3) && near(q[1], 2.0 / 3) && q[2] == 0); /* no data, no share */
  double none[] = {0, 0};
  T_EQ_INT(replay_shares_temperature(none, NULL, 2, 0.3, q, &err), MN_ERR_INPUT);
  boost[1] = 0;
  T_EQ_INT(replay_shares_temperature(n, boost, 3, 0.3, q, &err), MN_ERR_INPUT);
}

static void unimax_budgets(void)
{
  mn_error err = {0};
  double n[] = {100, 10, 1}, b[3], unused;
  /* 90 windows, 2 epochs: caps 200, 20, 2.  Even split 30: the smallest takes its 2, the
   * 88 left split 44 / 44, the middle one takes its 20, the largest the remaining 68. */
  T_EQ_INT(replay_budget_unimax(n, NULL, 3, 90, 2, b, &unused, &err), MN_OK);
  T_CHECK(near(b[0], 68) && near(b[1], 20) && near(b[2], 2) && unused == 0);
  /* more than every cap together: each gets its cap, and the rest is reported unused */
  T_EQ_INT(replay_budget_unimax(n, NULL, 3, 300, 2, b, &unused, &err), MN_OK);
  T_CHECK(near(b[0], 200) && near(b[1], 20) && near(b[2], 2) && near(unused, 78));
  /* boosts weight the even split: 1 : 2 : 1 */
  double same[] = {100, 100, 100}, boost[] = {1, 2, 1};
  T_EQ_INT(replay_budget_unimax(same, boost, 3, 100, 10, b, &unused, &err), MN_OK);
  T_CHECK(near(b[0], 25) && near(b[1], 50) && near(b[2], 25));
  /* a boosted language that runs out hands its excess to the others */
  double small[] = {100, 5, 100};
  T_EQ_INT(replay_budget_unimax(small, boost, 3, 100, 1, b, &unused, &err), MN_OK);
  T_CHECK(near(b[1], 5) && near(b[0], 47.5) && near(b[2], 47.5));
  T_EQ_INT(replay_budget_unimax(n, NULL, 3, 90, 0, b, &unused, &err), MN_ERR_INPUT);
}

/*
 * adapt_made_up_drifts -- the drift controller on made-up losses: language 0's replayed rows
 * get worse than the baseline's step by step (2% worse), then recover (0.1%); language 1 stays
 * exactly at the baseline; language 2 is never replayed.  0 gets more replay while it drifts,
 * up to the bound, and gives it back once it recovers; 1 and 2 stay at 1; nothing drifting
 * moves nothing.
 */
static void adapt_made_up_drifts(void)
{
  mn_error err = {0};
  replay_adapt a;
  T_EQ_INT(replay_adapt_init(&a, 3, &err), MN_OK);
  replay_adapt_law law = replay_adapt_default;
  law.max_boost = 3.0;
  for (int t = 0; t < 50; t++) { /* nothing drifts: nothing moves */
    replay_adapt_add(&a, 1, 2.0, 2.0);
    replay_adapt_add(&a, 0, 3.0, 3.0);
    T_CHECK(!replay_adapt_step(&a, &law));
  }
  T_CHECK(replay_adapt_boost(&a, 0) == 1.0 && replay_adapt_boost(&a, 1) == 1.0);
  double prev = 1.0, peak = 1.0;
  bool rising = true;
  for (int t = 0; t < 400; t++) { /* language 0 drifts: 2% worse than the baseline */
    replay_adapt_add(&a, 0, 3.06, 3.0);
    replay_adapt_add(&a, 0, 2.04, 2.0); /* two rows in a step: their sums */
    replay_adapt_add(&a, 1, 2.0, 2.0);
    replay_adapt_step(&a, &law);
    double b = replay_adapt_boost(&a, 0);
    rising = rising && b >= prev;
    prev = b, peak = b > peak ? b : peak;
  }
  T_CHECK(rising);
  T_CHECK_MSG(fabs(a.drift[0] - 0.02) < 2e-4, "drift %g", a.drift[0]);
  T_CHECK_MSG(fabs(peak - 3.0) < 1e-9, "bounded at 3: %g", peak);
  T_CHECK(replay_adapt_boost(&a, 1) == 1.0 && replay_adapt_boost(&a, 2) == 1.0);
  T_EQ_INT(a.seen[2], 0);
  bool falling = true;
  for (int t = 0; t < 1000; t++) { /* it recovers: 0.1% worse, under the target */
    replay_adapt_add(&a, 0, 3.003, 3.0);
    replay_adapt_step(&a, &law);
    double b = replay_adapt_boost(&a, 0);
    falling = falling && b <= prev;
    prev = b;
  }
  T_CHECK(falling);
  T_CHECK_MSG(replay_adapt_boost(&a, 0) == 1.0, "after recovering: %g", replay_adapt_boost(&a, 0));
  /* a step without language 0's rows leaves its drift and factor as they were */
  double d = a.drift[0];
  replay_adapt_add(&a, 1, 2.0, 2.0);
  replay_adapt_step(&a, &law);
  T_CHECK(a.drift[0] == d);
  replay_adapt_add(&a, 0, NAN, 3.0); /* a non-finite loss is no observation */
  replay_adapt_step(&a, &law);
  T_CHECK(a.drift[0] == d);
  /* a language the fresh text trains (fixed): its drift is read, it gets no factor */
  a.fixed[1] = true;
  for (int t = 0; t < 300; t++) {
    replay_adapt_add(&a, 1, 2.2, 2.0);
    replay_adapt_step(&a, &law);
  }
  T_CHECK(a.drift[1] > 0.09 && replay_adapt_boost(&a, 1) == 1.0);
  replay_adapt_fini(&a);
}

/*
 * adapt_shared_drift -- the default law reads a language's drift over the mean of the
 * protected languages: when every language drifts alike (the shares cannot answer that)
 * nothing moves; when one drifts more than the rest, it alone gets more replay.
 */
static void adapt_shared_drift(void)
{
  mn_error err = {0};
  replay_adapt a;
  T_EQ_INT(replay_adapt_init(&a, 3, &err), MN_OK);
  replay_adapt_law law = replay_adapt_default;
  T_CHECK(law.relative);
  for (int t = 0; t < 300; t++) { /* all three 3% worse */
    for (size_t l = 0; l < 3; l++)
      replay_adapt_add(&a, l, 2.06, 2.0);
    T_CHECK(!replay_adapt_step(&a, &law));
  }
  T_CHECK(a.drift[0] > 0.029 && replay_adapt_boost(&a, 0) == 1.0);
  for (int t = 0; t < 300; t++) { /* language 2 drifts 3 points more */
    replay_adapt_add(&a, 0, 2.06, 2.0);
    replay_adapt_add(&a, 1, 2.06, 2.0);
    replay_adapt_add(&a, 2, 2.12, 2.0);
    replay_adapt_step(&a, &law);
  }
  T_CHECK_MSG(replay_adapt_boost(&a, 2) > 1.5, "the outlier: %g", replay_adapt_boost(&a, 2));
  T_CHECK(replay_adapt_boost(&a, 0) == 1.0 && replay_adapt_boost(&a, 1) == 1.0);
  replay_adapt_fini(&a);
}

int main(void)
{
  int fd = mkstemp(path);
  close(fd);
  T_RUN(fills_then_samples);
  T_RUN(uniform_across_refreshes);
  T_RUN(absorb_round_trip);
  T_RUN(absorb_is_atomic);
  T_RUN(names_its_tokenizer);
  T_RUN(damage_is_refused);
  T_RUN(temperature_shares);
  T_RUN(unimax_budgets);
  T_RUN(adapt_made_up_drifts);
  T_RUN(adapt_shared_drift);
  unlink(path);
  return T_DONE();
}
