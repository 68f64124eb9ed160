/*
 * util.c -- small helpers: strdup with a status, integer parsing, clocks,
 * and the fault-injection counters used by the I/O paths in tests.
 */
#include "common/common.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Atomic long fault_countdown[MN_FAULT_KINDS];

void mn_fault_arm(mn_fault_kind kind, long n)
{
  atomic_store(&fault_countdown[kind], n);
}

bool mn_fault__hit(mn_fault_kind kind)
{
  long left = atomic_load(&fault_countdown[kind]);
  while (left > 0) {
    if (atomic_compare_exchange_weak(&fault_countdown[kind], &left, left - 1)) return left == 1;
  }
  return false;
}

mn_status mn_strdup(const char *s, char **out, mn_error *err)
{
  size_t n = strlen(s) + 1;
  *out = NULL;
  char *p = mn_fault__hit(MN_FAULT_ALLOC) ? NULL : malloc(n);
  if (!p) return mn_error_set(err, MN_ERR_NOMEM, "out of memory copying a string of %zu bytes", n);
  memcpy(p, s, n);
  *out = p;
  return MN_OK;
}

uint64_t mn_splitmix64(uint64_t *state)
{
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

bool mn_lang_code_valid(const char *code)
{
  size_t n = code ? strlen(code) : 0;
  if (n < 2 || n > 7) return false;
  for (size_t i = 0; i < n; i++)
    if (!((code[i] >= 'a' && code[i] <= 'z') || code[i] == '_')) return false;
  return true;
}

int mn_lang_list_next(const char **p, char code[8], double *value, const char **entry, size_t *len)
{
  const char *s = *p;
  if (!s || !*s) return 0;
  const char *end = strchr(s, ',');
  size_t n = end ? (size_t)(end - s) : strlen(s);
  *p = end ? end + 1 : s + n;
  *entry = s, *len = n, *value = NAN, code[0] = 0;
  const char *colon = memchr(s, ':', n);
  size_t k = colon ? (size_t)(colon - s) : n;
  if (k < 2 || k > 7) return -1;
  memcpy(code, s, k), code[k] = 0;
  if (!mn_lang_code_valid(code)) return -1;
  if (colon) {
    char num[32], *e;
    size_t m = n - k - 1;
    if (m == 0 || m >= sizeof num) return -1;
    memcpy(num, colon + 1, m), num[m] = 0;
    *value = strtod(num, &e);
    if (*e || !isfinite(*value)) return -1;
  }
  return 1;
}

bool mn_parse_i64(const char *s, int64_t *out)
{
  char *end = NULL;
  if (!s || !(*s == '-' || (*s >= '0' && *s <= '9'))) return false; /* no spaces, no '+' */
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || *end != '\0' || end == s) return false;
  *out = (int64_t)v;
  return true;
}

double mn_monotonic_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void mn_wall_iso8601(char out[32])
{
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

bool mn_split_heldout(const uint8_t sha[MN_SHA256_LEN], double fraction)
{
  uint64_t h = 0;
  for (int i = 0; i < 8; i++)
    h = h << 8 | sha[i];
  if (fraction <= 0) return false;
  if (fraction >= 1) return true;
  /* fraction < 1, so fraction * 2^64 fits in a uint64_t */
  uint64_t threshold = (uint64_t)(fraction * 18446744073709551616.0);
  return h < threshold;
}

size_t mn_edit_distance(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b);
  if (la > 63 || lb > 63) return 64;
  size_t d[64][64];
  for (size_t i = 0; i <= la; i++)
    d[i][0] = i;
  for (size_t j = 0; j <= lb; j++)
    d[0][j] = j;
  for (size_t i = 1; i <= la; i++) {
    for (size_t j = 1; j <= lb; j++) {
      size_t sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
      size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
      d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
      /* two neighbours swapped ("nwe" for "new") is one slip, not two */
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
          d[i - 2][j - 2] + 1 < d[i][j])
        d[i][j] = d[i - 2][j - 2] + 1;
    }
  }
  return d[la][lb];
}

const char *mn_nearest(const char *s, const char *const *cands, size_t n)
{
  const char *best = NULL;
  /* a third of the word, 2 for words of 4 to 8 letters, 1 for shorter ones (a letter or two
   * is near anything) */
  size_t bd = SIZE_MAX, len = strlen(s), limit = len / 3 > 2 ? len / 3 : len > 3 ? 2 : 1;
  for (size_t i = 0; i < n; i++) {
    size_t d = mn_edit_distance(s, cands[i]);
    if (d < bd) bd = d, best = cands[i];
  }
  return bd <= limit ? best : NULL;
}
