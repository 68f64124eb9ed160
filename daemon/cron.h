/*
 * cron.h -- the refresh schedule (`schedule.refresh: "0 3 * * *"`): five-field cron
 * expressions and the next time one fires, in UTC.
 *
 * Fields: minute 0-59, hour 0-23, day of month 1-31, month 1-12, day of week 0-7 (0 and 7
 * are Sunday).  Each is a comma list of `*`, `N`, `A-B`, with an optional `/STEP` after `*`,
 * `A-B` or `N` (`N/S`: from N to the field's end).  As in Vixie cron, when both the day of
 * month and the day of week are restricted a day matches if either does.  Names (`mon`,
 * `jan`) and `@daily`-style macros are not accepted: one spelling, one meaning.
 * Pure functions of their inputs; no time zone, no locale.
 */
#ifndef MNEMO_CRON_H
#define MNEMO_CRON_H

#include "common/common.h"

#include <stdint.h>

typedef struct mn_cron {
  uint64_t minutes;          /* bit m: minute m */
  uint32_t hours;            /* bit h */
  uint32_t days;             /* bit d, 1..31 */
  uint32_t months;           /* bit m, 1..12 */
  uint32_t weekdays;         /* bit w, 0..6 (Sunday 0) */
  bool any_day, any_weekday; /* the field was `*` (or `*` with step 1) */
} mn_cron;

/* mn_cron_parse -- MN_ERR_INPUT naming the expression, the field and what is wrong. */
MN_NODISCARD mn_status mn_cron_parse(const char *expr, mn_cron *out /* OUT */, mn_error *err);

/* mn_cron_next -- the first whole minute strictly after `after` (seconds since the epoch,
 * UTC) at which the schedule fires; MN_ERR_INPUT when it never does (e.g. "0 0 30 2 *"). */
MN_NODISCARD mn_status mn_cron_next(const mn_cron *c, int64_t after, int64_t *next /* OUT */,
                                    mn_error *err);

#endif /* MNEMO_CRON_H */
