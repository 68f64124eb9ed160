/*
 * bench_guards.c -- the speed of the guards' bootstrap on a guard run's usual load: 40
 * languages of 1,000 paired items, 10,000 resamples each.  Not a test: bench/guards/run
 * builds and runs it.  Prints one JSON line with the best of three timed runs (the
 * machine is shared; the best run is the one least disturbed by others).
 */
#include "guards/guards.h"

#include <stdlib.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

enum { LANGS = 40, ITEMS = 1000, RESAMPLES = 10000, RUNS = 3 };

static double uniform(uint64_t *state)
{
  return (double)(mn_splitmix64(state) >> 11) * 0x1p-53;
}

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(void)
{
  static double base[LANGS][ITEMS], cand[LANGS][ITEMS];
  static guard_interval iv[LANGS];
  uint64_t state = 20261126;
  /* items of 100..3000 bits; each language drifts by -2%..+2%, each item by +-10% */
  for (int l = 0; l < LANGS; l++) {
    double drift = 0.04 * uniform(&state) - 0.02;
    for (int i = 0; i < ITEMS; i++) {
      base[l][i] = 100 + 2900 * uniform(&state);
      cand[l][i] = base[l][i] * (1 + drift) * (0.9 + 0.2 * uniform(&state));
    }
  }
  double best = 0;
  for (int run = 0; run < RUNS; run++) {
    mn_error err = {0};
    double t0 = now_s();
    for (int l = 0; l < LANGS; l++) {
      if (guard_bootstrap(base[l], cand[l], ITEMS, (uint64_t)l, RESAMPLES, 0.95, &iv[l], &err) !=
          MN_OK) {
        fprintf(stderr, "bench_guards: %s\n", err.msg);
        return 1;
      }
    }
    double t = now_s() - t0;
    if (run == 0 || t < best) best = t;
  }
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  /* one interval printed so that a run that computes nonsense fast is visible */
  printf("{\"event\":\"bench_guards\",\"languages\":%d,\"items\":%d,\"resamples\":%d,"
         "\"seconds\":%.3f,\"threads\":%d,\"lang0\":{\"change\":%.5f,\"lo\":%.5f,\"hi\":%.5f}}\n",
         LANGS, ITEMS, RESAMPLES, best, threads, iv[0].change, iv[0].lo, iv[0].hi);
  return 0;
}
