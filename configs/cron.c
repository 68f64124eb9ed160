/*
 * cron.c -- schedule.refresh values: five-field cron expressions and their next firing time
 * in UTC (config.h).  Here, below the daemon, so that the config validator that mnemod and
 * `mnemoctl config check` share refuses what the daemon could not run.
 *
 * Calendar arithmetic is done on days since 1970-01-01 with the civil-from-days algorithm
 * (proleptic Gregorian), not with timegm/gmtime: no time zone or libc extension can move a
 * refresh.
 */
#include "configs/config.h"

#include <stdlib.h>
#include <string.h>

typedef struct field {
  const char *name;
  int lo, hi;
} field;

static const field fields[5] = {{"minute", 0, 59},
                                {"hour", 0, 23},
                                {"day of month", 1, 31},
                                {"month", 1, 12},
                                {"day of week", 0, 7}};

/* a number of the field at *p, advancing p; false when there is none or it is out of range */
static bool number(const char **p, const field *f, int *out)
{
  const char *s = *p;
  int v = 0, digits = 0;
  while (*s >= '0' && *s <= '9' && digits < 3)
    v = v * 10 + (*s++ - '0'), digits++;
  if (!digits || (*s >= '0' && *s <= '9') || v < f->lo || v > f->hi) return false;
  *p = s, *out = v;
  return true;
}

/* one field's text (len bytes) into a bit set; *star: it was `*` or `*` / 1 */
static mn_status parse_field(const char *expr, const char *text, size_t len, const field *f,
                             uint64_t *bits, bool *star, mn_error *err)
{
  char buf[64];
  if (len == 0 || len >= sizeof buf)
    return mn_error_set(err, MN_ERR_INPUT, "schedule \"%s\": the %s field is %s", expr, f->name,
                        len ? "too long" : "empty");
  memcpy(buf, text, len), buf[len] = 0;
  *bits = 0, *star = false;
  if (buf[0] == ',' || buf[len - 1] == ',' || strstr(buf, ",,"))
    return mn_error_set(err, MN_ERR_INPUT, "schedule \"%s\": the %s field \"%s\" has an empty item",
                        expr, f->name, buf);
  for (char *save = NULL, *item = strtok_r(buf, ",", &save); item;
       item = strtok_r(NULL, ",", &save)) {
    const char *p = item;
    int a = f->lo, b = f->hi, step = 1;
    bool all = false;
    if (*p == '*') {
      all = true, p++;
    } else if (!number(&p, f, &a)) {
      goto bad;
    } else if (*p == '-') {
      p++;
      if (!number(&p, f, &b) || b < a) goto bad;
    } else if (*p != '/') {
      b = a;
    }
    if (*p == '/') {
      p++;
      const field any = {f->name, 1, f->hi};
      if (!number(&p, &any, &step)) goto bad;
    }
    if (*p) goto bad;
    if (all && step == 1) *star = true;
    for (int v = a; v <= b; v += step)
      *bits |= 1ULL << v;
    continue;
  bad:
    return mn_error_set(err, MN_ERR_INPUT,
                        "schedule \"%s\": the %s field's \"%s\" is not *, N, A-B or one of them "
                        "/STEP with values %d-%d",
                        expr, f->name, item, f->lo, f->hi);
  }
  if (!*bits)
    return mn_error_set(err, MN_ERR_INPUT, "schedule \"%s\": the %s field is empty", expr, f->name);
  return MN_OK;
}

mn_status mn_cron_parse(const char *expr, mn_cron *out, mn_error *err)
{
  memset(out, 0, sizeof *out);
  if (!expr) return mn_error_set(err, MN_ERR_INPUT, "schedule: none given");
  const char *p = expr;
  uint64_t bits[5];
  bool star[5];
  int n = 0;
  while (*p) {
    while (*p == ' ' || *p == '\t')
      p++;
    if (!*p) break;
    const char *s = p;
    while (*p && *p != ' ' && *p != '\t')
      p++;
    if (n == 5)
      return mn_error_set(err, MN_ERR_INPUT,
                          "schedule \"%s\": more than five fields (minute hour day month weekday)",
                          expr);
    mn_status rc = parse_field(expr, s, (size_t)(p - s), &fields[n], &bits[n], &star[n], err);
    if (rc != MN_OK) return rc;
    n++;
  }
  if (n != 5)
    return mn_error_set(err, MN_ERR_INPUT,
                        "schedule \"%s\": %d fields, want five (minute hour day month weekday)",
                        expr, n);
  out->minutes = bits[0];
  out->hours = (uint32_t)bits[1];
  out->days = (uint32_t)bits[2];
  out->months = (uint32_t)bits[3];
  out->weekdays = (uint32_t)((bits[4] | bits[4] >> 7) & 0x7f); /* 7 is Sunday too */
  out->any_day = star[2];
  out->any_weekday = star[4];
  return MN_OK;
}

/* days since 1970-01-01 of a civil date, and back (Howard Hinnant's algorithms) */
static int64_t days_from_civil(int64_t y, int m, int d)
{
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

static bool day_matches(const mn_cron *c, int64_t day, int d)
{
  int wd = (int)(((day % 7) + 11) % 7); /* 1970-01-01 was a Thursday (4) */
  bool dom = (c->days >> d) & 1, dow = (c->weekdays >> wd) & 1;
  if (!c->any_day && !c->any_weekday) return dom || dow; /* Vixie: either restricts */
  return dom && dow;
}

mn_status mn_cron_next(const mn_cron *c, int64_t after, int64_t *next, mn_error *err)
{
  int64_t t = (after >= 0 ? after / 60 : (after - 59) / 60) + 1; /* the next whole minute */
  int64_t day = t >= 0 ? t / 1440 : (t - 1439) / 1440;
  int minute = (int)(t - day * 1440);
  /* a schedule that can fire does so within eight years (29 February of some weekday) */
  for (int64_t last = day + 8 * 366; day <= last; day++, minute = 0) {
    int64_t y;
    int m, d;
    civil_from_days(day, &y, &m, &d);
    if (!((c->months >> m) & 1) || !day_matches(c, day, d)) continue;
    for (int hm = minute; hm < 1440; hm++) {
      int h = hm / 60, mi = hm % 60;
      if (!((c->hours >> h) & 1)) {
        hm = h * 60 + 59; /* the rest of this hour */
        continue;
      }
      if ((c->minutes >> mi) & 1) {
        *next = (day * 1440 + hm) * 60;
        return MN_OK;
      }
    }
  }
  return mn_error_set(err, MN_ERR_INPUT,
                      "the schedule never fires (no such day, e.g. 30 February)");
}

/* days_from_civil is the inverse the tests check civil_from_days against */
int64_t mn_cron__days_from_civil(int64_t y, int m, int d);
int64_t mn_cron__days_from_civil(int64_t y, int m, int d)
{
  return days_from_civil(y, m, d);
}
