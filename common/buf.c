/*
 * buf.c -- bounded growable byte buffer.
 *
 * Invariants: len <= max; when data != NULL, data[len] == '\0' and cap > len.
 * A failed append leaves the buffer exactly as it was.
 */
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void mn_buf_init(mn_buf *b, size_t max)
{
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->max = max;
}

void mn_buf_fini(mn_buf *b)
{
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

void mn_buf_reset(mn_buf *b)
{
  b->len = 0;
  if (b->data) b->data[0] = '\0';
}

mn_status mn_buf_reserve(mn_buf *b, size_t extra, mn_error *err)
{
  if (extra > b->max || b->len > b->max - extra)
    return mn_error_set(err, MN_ERR_INPUT, "data too large: %zu bytes over the limit of %zu",
                        b->len + extra - b->max, b->max);
  size_t need = b->len + extra + 1; /* + NUL */
  if (need <= b->cap) return MN_OK;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  if (b->max < SIZE_MAX && cap > b->max + 1) cap = b->max + 1;
  char *p = mn_fault__hit(MN_FAULT_ALLOC) ? NULL : realloc(b->data, cap);
  if (!p)
    return mn_error_set(err, MN_ERR_NOMEM, "out of memory growing a buffer to %zu bytes", cap);
  b->data = p;
  b->cap = cap;
  b->data[b->len] = '\0';
  return MN_OK;
}

mn_status mn_buf_append(mn_buf *b, const void *p, size_t n, mn_error *err)
{
  mn_status rc = mn_buf_reserve(b, n, err);
  if (rc != MN_OK) return rc;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return MN_OK;
}

mn_status mn_buf_appendf(mn_buf *b, mn_error *err, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return mn_error_set(err, MN_ERR_INPUT, "could not format text: bad format \"%s\"", fmt);
  mn_status rc = mn_buf_reserve(b, (size_t)n, err);
  if (rc != MN_OK) return rc;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return MN_OK;
}

mn_status mn_buf_read_file(mn_buf *b, const char *path, mn_error *err)
{
  mn_status rc = MN_OK;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return mn_error_set(err, MN_ERR_IO, "could not open \"%s\": %s", path, strerror(errno));
  mn_buf_reset(b);
  char chunk[65536];
  for (;;) {
    ssize_t got = read(fd, chunk, sizeof chunk);
    if (got < 0) {
      if (errno == EINTR) continue;
      rc = mn_error_set(err, MN_ERR_IO, "could not read \"%s\": %s", path, strerror(errno));
      goto out;
    }
    if (got == 0) break;
    rc = mn_buf_append(b, chunk, (size_t)got, err);
    if (rc != MN_OK) {
      mn_error_prefix(err, "could not read \"%s\"", path);
      goto out;
    }
  }
  if (!b->data) rc = mn_buf_reserve(b, 0, err); /* an empty file still gets a "" */
out:
  close(fd);
  return rc;
}
