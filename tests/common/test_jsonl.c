/*
 * test_jsonl.c -- the one JSONL reader: records in order, blank lines skipped, every bad
 * line named file:line, a stream as well as a file, and the little-endian helpers.
 */
#include "common/common.h"
#include "tests/test.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[64];

static void write_text(const char *text)
{
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
}

static void records_in_order(void)
{
  /* blank lines, white space only lines, CRLF and a last line without a newline */
  write_text("{\"n\": 1}\n\n   \t\n{\"n\": 2, \"s\": \"a\\u0000b\"}\r\n{\"n\": 3}");
  mn_jsonl r;
  mn_error err;
  T_EQ_INT(mn_jsonl_open(&r, path, &err), MN_OK);
  json_t *o;
  int64_t want_line[] = {1, 4, 5};
  for (int i = 0; i < 3; i++) {
    T_EQ_INT(mn_jsonl_next(&r, &o, &err), MN_OK);
    T_CHECK(o != NULL);
    T_EQ_INT(json_integer_value(json_object_get(o, "n")), i + 1);
    T_EQ_INT(r.line_no, want_line[i]);
    if (i == 1) T_EQ_INT(json_string_length(json_object_get(o, "s")), 3); /* NUL kept */
    json_decref(o);
  }
  T_EQ_INT(mn_jsonl_next(&r, &o, &err), MN_OK);
  T_CHECK(o == NULL);
  mn_jsonl_close(&r);
}

static void bad_lines_named(void)
{
  const char *bad[] = {"{\"a\": 1}\n[1, 2]\n", "{\"a\": 1}\n{\"a\": \n", "\n{\"a\": 1, \"a\": 2}\n",
                       "{\"a\": 1}\n\"text\"\n"};
  const char *why[] = {"not a JSON object (an array)", "not valid JSON (",
                       "not valid JSON (duplicate object key", "not a JSON object ("};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    write_text(bad[i]);
    mn_jsonl r;
    mn_error err = {0};
    T_EQ_INT(mn_jsonl_open(&r, path, &err), MN_OK);
    json_t *o = NULL;
    mn_status rc;
    while ((rc = mn_jsonl_next(&r, &o, &err)) == MN_OK && o)
      json_decref(o);
    T_EQ_INT(rc, MN_ERR_INPUT);
    T_CHECK(o == NULL);
    char want[128];
    snprintf(want, sizeof want, "%s:2: %s", path, why[i]);
    T_CONTAINS(err.msg, want);
    mn_jsonl_close(&r);
  }
}

static mn_status count_fn(json_t *o, const mn_jsonl *r, void *ctx, mn_error *err)
{
  if (json_object_get(o, "stop")) return mn_jsonl_fail(r, err, MN_ERR_INPUT, "told to stop");
  (*(int *)ctx)++;
  return MN_OK;
}

static void each_and_fail(void)
{
  write_text("{}\n{}\n{\"stop\": true}\n{}\n");
  int n = 0;
  mn_error err;
  T_EQ_INT(mn_jsonl_each(path, count_fn, &n, &err), MN_ERR_INPUT);
  T_EQ_INT(n, 2);
  char want[128];
  snprintf(want, sizeof want, "%s:3: told to stop", path);
  T_EQ_STR(err.msg, want);
  T_EQ_INT(mn_jsonl_each("/nonexistent/x.jsonl", count_fn, &n, &err), MN_ERR_IO);
  T_CONTAINS(err.msg, "/nonexistent/x.jsonl");
}

static void from_stream(void)
{
  write_text("{\"k\": \"v\"}\n");
  FILE *f = fopen(path, "r");
  mn_jsonl r;
  mn_jsonl_from(&r, f, "<stdin>");
  json_t *o;
  mn_error err;
  T_EQ_INT(mn_jsonl_next(&r, &o, &err), MN_OK);
  T_EQ_STR(json_string_value(json_object_get(o, "k")), "v");
  json_decref(o);
  mn_jsonl_close(&r);
  T_CHECK(fgetc(f) == EOF); /* still open: the caller's */
  fclose(f);
}

static void codes_without_nul(void)
{
  json_t *o = json_loads("{\"a\": \"sw\\u0000h\", \"b\": \"swh\", \"c\": 3}", JSON_ALLOW_NUL, NULL);
  T_CHECK(o != NULL);
  T_CHECK(mn_json_str(json_object_get(o, "a")) == NULL); /* not read as "sw" */
  T_EQ_STR(mn_json_str(json_object_get(o, "b")), "swh");
  T_CHECK(mn_json_str(json_object_get(o, "c")) == NULL);
  T_CHECK(mn_json_str(NULL) == NULL);
  json_decref(o);
}

static void little_endian(void)
{
  uint8_t b[8];
  mn_put_le32(b, 0x01020304u);
  T_CHECK(b[0] == 4 && b[1] == 3 && b[2] == 2 && b[3] == 1);
  T_CHECK(mn_get_le32(b) == 0x01020304u);
  mn_put_le64(b, 0x0102030405060708ull);
  T_CHECK(b[0] == 8 && b[7] == 1);
  T_CHECK(mn_get_le64(b) == 0x0102030405060708ull);
  mn_put_le64(b, UINT64_MAX);
  T_CHECK(mn_get_le64(b) == UINT64_MAX);
}

int main(void)
{
  snprintf(path, sizeof path, "/tmp/mnemo-test-jsonl-%d.jsonl", (int)getpid());
  T_RUN(records_in_order);
  T_RUN(bad_lines_named);
  T_RUN(each_and_fail);
  T_RUN(from_stream);
  T_RUN(codes_without_nul);
  T_RUN(little_endian);
  unlink(path);
  return T_DONE();
}
