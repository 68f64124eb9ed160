/*
 * load.c -- a closed-loop HTTP load: CLIENTS clients, each sending GET URL again the moment
 * its answer arrived, for SECONDS (after a warm-up second), over kept-alive connections
 * (libcurl's multi interface, one thread).  Each client sends one of the COOKIE values
 * (round robin: several sessions).  One JSON line: requests, failures (a status other than
 * 200, or a transport error), requests per second and the latency percentiles in ms.
 *
 *   bench_console URL CLIENTS SECONDS COOKIE...
 */
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
  (void)p, (void)ud;
  return size * n;
}

static int by_value(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
  if (argc < 5) {
    fprintf(stderr, "usage: bench_console URL CLIENTS SECONDS COOKIE...\n");
    return 2;
  }
  const char *url = argv[1];
  int clients = (int)strtol(argv[2], NULL, 10);
  double seconds = strtod(argv[3], NULL);
  if (clients < 1 || clients > 10000 || !(seconds > 0)) {
    fprintf(stderr, "bench_console: CLIENTS 1-10000 and SECONDS > 0\n");
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURLM *m = curl_multi_init();
  curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)clients + 16);
  CURL **h = calloc((size_t)clients, sizeof *h);
  size_t cap = 1 << 20, n = 0;
  double *lat = malloc(cap * sizeof *lat);
  if (!h || !lat) return 1;
  for (int i = 0; i < clients; i++) {
    h[i] = curl_easy_init();
    curl_easy_setopt(h[i], CURLOPT_URL, url);
    curl_easy_setopt(h[i], CURLOPT_COOKIE, argv[4 + i % (argc - 4)]);
    curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h[i], CURLOPT_TIMEOUT, 30L);
    curl_multi_add_handle(m, h[i]);
  }
  double t0 = now_s(), start = t0 + 1, end = start + seconds;
  long failures = 0, requests = 0;
  int running = 0, active = clients; /* transfers in libcurl's hands; handles added */
  while (active > 0) {
    curl_multi_perform(m, &running);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m, &left)) != NULL) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL *e = msg->easy_handle;
      long code = 0;
      curl_off_t us = 0;
      curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
      curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &us);
      double t = now_s();
      if (t >= start && t < end) {
        requests++;
        if (msg->data.result != CURLE_OK || code != 200) failures++;
        if (n == cap) {
          double *more = realloc(lat, 2 * cap * sizeof *lat);
          if (!more) return 1;
          lat = more, cap *= 2;
        }
        lat[n++] = (double)us / 1e3;
      }
      curl_multi_remove_handle(m, e);
      if (t < end)
        curl_multi_add_handle(m, e); /* the client's next request */
      else
        active--;
    }
    curl_multi_poll(m, NULL, 0, 100, NULL);
    if (now_s() >= end + 35) break; /* an answer that never comes */
  }
  qsort(lat, n, sizeof *lat, by_value);
#define PCT(q) (n ? lat[(size_t)fmin((double)n - 1, floor((q) * (double)n))] : NAN)
  printf("{\"url\": \"%s\", \"clients\": %d, \"seconds\": %.1f, \"requests\": %ld, "
         "\"failures\": %ld, \"rps\": %.1f, \"p50_ms\": %.2f, \"p90_ms\": %.2f, \"p99_ms\": %.2f, "
         "\"max_ms\": %.2f}\n",
         url, clients, seconds, requests, failures, (double)requests / seconds, PCT(0.50),
         PCT(0.90), PCT(0.99), n ? lat[n - 1] : NAN);
  for (int i = 0; i < clients; i++) {
    curl_multi_remove_handle(m, h[i]);
    curl_easy_cleanup(h[i]);
  }
  curl_multi_cleanup(m);
  curl_global_cleanup();
  free(h);
  free(lat);
  return failures > 0;
}
