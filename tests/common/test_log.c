/* test_log.c -- one line per event, in logfmt and in JSON, levels filtered. */
#include "common/common.h"
#include "tests/test.h"

#include <jansson.h>
#include <unistd.h>

static char *capture(mn_log_format fmt, mn_log_level min, void (*emit)(void))
{
  char path[] = "/tmp/mnemo-test-log-XXXXXX";
  int fd = mkstemp(path);
  mn_log_configure(min, fmt, fd);
  emit();
  mn_log_configure(MN_LOG_INFO, MN_LOG_LOGFMT, -1);
  close(fd);
  mn_buf b;
  mn_buf_init(&b, 1 << 16);
  (void)!mn_buf_read_file(&b, path, NULL);
  unlink(path);
  return b.data;
}

static void emit_sample(void)
{
  mn_log(MN_LOG_DEBUG, "hidden below info");
  mn_log(MN_LOG_INFO, "migration applied", MN_KV_I("version", 3), MN_KV_S("name", "add_jobs"),
         MN_KV_D("duration_ms", 1.5), MN_KV_B("ok", true));
  mn_log(MN_LOG_WARN, "odd value", MN_KV_S("text", "a \"quoted\" = value\nnext"),
         MN_KV_S("empty", ""), MN_KV_S("lang", "ภาษาไทย"));
}

static void logfmt_lines(void)
{
  char *out = capture(MN_LOG_LOGFMT, MN_LOG_INFO, emit_sample);
  T_CHECK(out != NULL);
  T_CHECK(!strstr(out, "hidden"));
  T_CONTAINS(
      out,
      "level=info msg=\"migration applied\" version=3 name=add_jobs duration_ms=1.5 ok=true\n");
  T_CONTAINS(out, "level=warn msg=\"odd value\" text=\"a \\\"quoted\\\" = value\\nnext\" "
                  "empty=\"\" lang=ภาษาไทย\n");
  T_CHECK(strncmp(out, "ts=", 3) == 0);
  int lines = 0;
  for (char *p = out; p && *p; p++)
    lines += *p == '\n';
  T_EQ_INT(lines, 2);
  free(out);
}

static void json_lines(void)
{
  char *out = capture(MN_LOG_JSON, MN_LOG_INFO, emit_sample);
  T_CHECK(out != NULL);
  char *line2 = out ? strchr(out, '\n') : NULL;
  T_CHECK(line2 != NULL);
  if (!line2) return;
  *line2++ = '\0';
  json_error_t je;
  json_t *a = json_loads(out, 0, &je);
  json_t *b = json_loads(line2, JSON_DISABLE_EOF_CHECK, &je);
  T_CHECK(a && b);
  if (a && b) {
    T_EQ_STR(json_string_value(json_object_get(a, "level")), "info");
    T_EQ_STR(json_string_value(json_object_get(a, "msg")), "migration applied");
    T_EQ_INT(json_integer_value(json_object_get(a, "version")), 3);
    T_CHECK(json_is_true(json_object_get(a, "ok")));
    T_EQ_STR(json_string_value(json_object_get(b, "text")), "a \"quoted\" = value\nnext");
    T_EQ_STR(json_string_value(json_object_get(b, "lang")), "ภาษาไทย");
  }
  json_decref(a);
  json_decref(b);
  free(out);
}

static void emit_error(void)
{
  mn_error err;
  mn_error_set(&err, MN_ERR_IO, "could not open \"x\"");
  mn_error_detail(&err, "No such file");
  mn_log_error("startup failed", &err);
}

static void emit_huge(void)
{
  static char big[100000];
  memset(big, 'x', sizeof big - 1);
  mn_log(MN_LOG_INFO, "huge event", MN_KV_S("blob", big), MN_KV_I("after", 1));
}

static void huge_events_are_cut_whole(void)
{
  char *out = capture(MN_LOG_LOGFMT, MN_LOG_INFO, emit_huge);
  T_CONTAINS(out, "msg=\"huge event\" truncated=true\n");
  T_CHECK(out && strlen(out) < 200);
  free(out);
  out = capture(MN_LOG_JSON, MN_LOG_INFO, emit_huge);
  json_error_t je;
  json_t *o = json_loads(out, JSON_DISABLE_EOF_CHECK, &je);
  T_CHECK(o && json_is_true(json_object_get(o, "truncated")));
  json_decref(o);
  free(out);
}

static void errors_and_levels(void)
{
  char *out = capture(MN_LOG_LOGFMT, MN_LOG_ERROR, emit_sample);
  T_EQ_STR(out, ""); /* nothing at or above error */
  free(out);
  out = capture(MN_LOG_LOGFMT, MN_LOG_DEBUG, emit_error);
  T_CONTAINS(out, "level=error msg=\"startup failed\" code=io error=\"could not open \\\"x\\\"\" "
                  "detail=\"No such file\"");
  free(out);
  mn_log_level l;
  mn_log_format f;
  T_CHECK(mn_log_level_parse("WARN", &l) && l == MN_LOG_WARN);
  T_CHECK(!mn_log_level_parse("verbose", &l));
  T_CHECK(mn_log_format_parse("json", &f) && f == MN_LOG_JSON);
  T_CHECK(!mn_log_format_parse("xml", &f));
}

int main(void)
{
  T_RUN(logfmt_lines);
  T_RUN(json_lines);
  T_RUN(errors_and_levels);
  T_RUN(huge_events_are_cut_whole);
  return T_DONE();
}
