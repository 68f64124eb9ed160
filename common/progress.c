/*
 * progress.c -- the progress line of a long command on a terminal: the caller's text (what
 * is being done, how much of it), the percentage, and an ETA once a few seconds of work have
 * been measured, rewritten in place and ended with a newline.
 *
 * Not for programs: what scripts and mnemod read is JSON lines on stdout, never this.  The
 * caller decides whether the line is on (stderr a terminal, no --json); off, every call is a
 * no-op, so a command calls it unconditionally.
 *
 * Invariants: a drawn line starts with "\r" and ends with "\033[K" (what a longer line
 * before it left is cleared), never with "\n" until mn_progress_end; it is at most as wide
 * as the terminal, so "\r" returns to its start; the percentage is rounded down, so 100%
 * means done >= total and nothing less.
 */
#include "common/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define MN_PROGRESS_EVERY_MS     250  /* at most four lines a second */
#define MN_PROGRESS_ETA_AFTER_MS 3000 /* a rate measured over less is mostly start-up */

void mn_progress_init(mn_progress *p, FILE *out)
{
  struct winsize ws;
  memset(p, 0, sizeof *p);
  p->out = out;
  p->cols = 80;
  if (out && ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) p->cols = ws.ws_col;
}

/* eta_text -- seconds as "42s", "3m07s" or "2h05m" */
static void eta_text(double s, char *out, size_t n)
{
  long t = (long)(s + 0.5);
  if (t < 60)
    snprintf(out, n, "%lds", t);
  else if (t < 3600)
    snprintf(out, n, "%ldm%02lds", t / 60, t % 60);
  else
    snprintf(out, n, "%ldh%02ldm", t / 3600, t % 3600 / 60);
}

void mn_progress_update(mn_progress *p, double done, double total, const char *fmt, ...)
{
  if (!p->out) return;
  double now = mn_monotonic_ms();
  bool first = !p->started, last = total > 0 && done >= total;
  if (first) p->started = true, p->t0 = now, p->done0 = done;
  if (!first && !last && !p->force && now - p->last < MN_PROGRESS_EVERY_MS) return;
  p->last = now, p->force = false;

  char tail[64] = "";
  if (total > 0) { /* how far, and once measured, how long to go */
    int pct = done >= total ? 100 : done <= 0 ? 0 : (int)(100 * done / total);
    int k = snprintf(tail, sizeof tail, "  %3d%%", pct);
    double ms = now - p->t0;
    if (!last && ms >= MN_PROGRESS_ETA_AFTER_MS && done > p->done0) {
      char eta[16];
      eta_text((total - done) * ms / (done - p->done0) / 1e3, eta, sizeof eta);
      snprintf(tail + k, sizeof tail - (size_t)k, "  ETA %s", eta);
    }
  }
  char text[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof text) n = (int)sizeof text - 1;
  /* one row: the text cut (at a character's start) so the percentage and ETA still fit */
  int room = p->cols - 1 - (int)strlen(tail);
  if (room < 0) room = 0;
  if (n > room) {
    n = room;
    while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
      n--;
  }
  fprintf(p->out, "\r%.*s%s\033[K", n, text, tail);
  fflush(p->out);
  p->drawn = true;
}

void mn_progress_end(mn_progress *p)
{
  if (!p->out || !p->drawn) return;
  fputc('\n', p->out);
  fflush(p->out);
  p->drawn = false;
  p->started = false;
}
