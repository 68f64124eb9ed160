/* test_buf.c -- the bounded buffer, SHA-256 and error helpers. */
#include "common/common.h"
#include "tests/test.h"

#include <unistd.h>

static void buffer_grows_to_its_cap(void)
{
  mn_buf b;
  mn_error err = {0};
  mn_buf_init(&b, 10);
  T_EQ_INT(mn_buf_append(&b, "hello", 5, &err), MN_OK);
  T_EQ_INT(mn_buf_appendf(&b, &err, "%s", "world"), MN_OK);
  T_EQ_STR(b.data, "helloworld");
  T_EQ_INT(b.len, 10);
  /* one byte over the cap fails and leaves the buffer as it was */
  T_EQ_INT(mn_buf_append(&b, "!", 1, &err), MN_ERR_INPUT);
  T_CONTAINS(err.msg, "too large");
  T_EQ_STR(b.data, "helloworld");
  T_EQ_INT(mn_buf_appendf(&b, &err, "%d", 7), MN_ERR_INPUT);
  T_EQ_INT(b.len, 10);
  mn_buf_reset(&b);
  T_EQ_INT(b.len, 0);
  T_EQ_STR(b.data, "");
  mn_buf_fini(&b);
}

static void failed_allocation_leaves_buffer_intact(void)
{
  mn_buf b;
  mn_error err = {0};
  mn_buf_init(&b, 1 << 20);
  T_EQ_INT(mn_buf_append(&b, "abc", 3, &err), MN_OK);
  mn_fault_arm(MN_FAULT_ALLOC, 1);
  char big[4096];
  memset(big, 'x', sizeof big);
  T_EQ_INT(mn_buf_append(&b, big, sizeof big, &err), MN_ERR_NOMEM);
  T_EQ_STR(b.data, "abc");
  T_EQ_INT(mn_buf_append(&b, big, sizeof big, &err), MN_OK); /* the fault fired once */
  T_EQ_INT(b.len, 3 + sizeof big);
  mn_buf_fini(&b);
}

static void read_file_respects_cap(void)
{
  char path[] = "/tmp/mnemo-test-buf-XXXXXX";
  int fd = mkstemp(path);
  T_CHECK(fd >= 0);
  T_EQ_INT(write(fd, "0123456789", 10), 10);
  close(fd);
  mn_buf b;
  mn_error err = {0};
  mn_buf_init(&b, 10);
  T_EQ_INT(mn_buf_read_file(&b, path, &err), MN_OK);
  T_EQ_STR(b.data, "0123456789");
  b.max = 9;
  T_EQ_INT(mn_buf_read_file(&b, path, &err), MN_ERR_INPUT);
  T_CONTAINS(err.msg, path);
  T_EQ_INT(mn_buf_read_file(&b, "/nonexistent/file", &err), MN_ERR_IO);
  T_CONTAINS(err.msg, "/nonexistent/file");
  mn_buf_fini(&b);
  unlink(path);
}

static void sha256_known_answers(void)
{
  char hex[MN_SHA256_HEX_LEN + 1];
  mn_error err = {0};
  T_EQ_INT(mn_sha256_hex("", 0, hex, &err), MN_OK);
  T_EQ_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  T_EQ_INT(mn_sha256_hex("abc", 3, hex, &err), MN_OK);
  T_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  /* streaming in pieces gives the same digest as one shot */
  const char *msg = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  mn_sha256 h;
  uint8_t d[MN_SHA256_LEN];
  T_EQ_INT(mn_sha256_init(&h, &err), MN_OK);
  for (const char *p = msg; *p; p += 7)
    T_EQ_INT(mn_sha256_update(&h, p, strlen(p) < 7 ? strlen(p) : 7, &err), MN_OK);
  T_EQ_INT(mn_sha256_final(&h, d, &err), MN_OK);
  mn_hex_encode(d, sizeof d, hex);
  T_EQ_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void error_helpers(void)
{
  mn_error err;
  mn_error_clear(&err);
  T_EQ_INT(mn_error_set(&err, MN_ERR_IO, "could not open \"%s\"", "x"), MN_ERR_IO);
  T_EQ_INT(mn_error_detail(&err, "errno %d", 2), MN_ERR_IO);
  T_EQ_INT(mn_error_prefix(&err, "loading %s", "cfg"), MN_ERR_IO);
  T_EQ_STR(err.msg, "loading cfg: could not open \"x\"");
  T_EQ_STR(err.detail, "errno 2");
  T_EQ_STR(mn_status_name(MN_ERR_CORRUPT), "corrupt");
  T_EQ_INT(mn_error_set(NULL, MN_ERR_DB, "no sink"), MN_ERR_DB); /* NULL err is allowed */
  /* stored codes never move: these numbers are in the database */
  T_EQ_INT(MN_ERR_NOMEM, 1);
  T_EQ_INT(MN_ERR_HTTP, 9);
  T_EQ_INT(MN_ERR_USAGE, 10);
  T_EQ_INT(MN_ERR_INTERNAL, 11);
  T_EQ_INT(MN_ERR_STATE, 12);
  int64_t v;
  T_CHECK(mn_parse_i64("-42", &v) && v == -42);
  T_CHECK(!mn_parse_i64(" 5", &v) && !mn_parse_i64("+7", &v) && !mn_parse_i64("5x", &v));
  T_CHECK(!mn_parse_i64("99999999999999999999", &v) && !mn_parse_i64("", &v));
}

int main(void)
{
  T_RUN(buffer_grows_to_its_cap);
  T_RUN(failed_allocation_leaves_buffer_intact);
  T_RUN(read_file_respects_cap);
  T_RUN(sha256_known_answers);
  T_RUN(error_helpers);
  return T_DONE();
}
