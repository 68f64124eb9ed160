/*
 * atomic.c -- crash-safe file replacement.
 *
 * The sequence is: create "<path>.tmp.<pid>.<n>" with O_EXCL in the target's
 * folder, write, fsync, close, rename over path, fsync the folder.  A reader
 * of path sees either the old file or the complete new one.  A crash before
 * the rename leaves a stray temporary file and the old content; a crash
 * after it leaves the new content (made durable by the folder fsync).
 *
 * Not for: appending to files, or files outside a local POSIX file system.
 */
#include "common/common.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void (*mn_atomic__before_rename)(const char *tmp_path, const char *path) = NULL;

struct mn_atomic_file {
  int fd;
  char *path;
  char *tmp;
};

static _Atomic unsigned long tmp_counter;

static void free_file(mn_atomic_file *f)
{
  if (!f) return;
  free(f->path);
  free(f->tmp);
  free(f);
}

mn_status mn_atomic_open(const char *path, unsigned mode, mn_atomic_file **out, mn_error *err)
{
  mn_status rc = MN_OK;
  mn_atomic_file *f = NULL;
  *out = NULL;

  f = mn_fault__hit(MN_FAULT_ALLOC) ? NULL : calloc(1, sizeof *f);
  if (!f) return mn_error_set(err, MN_ERR_NOMEM, "out of memory opening \"%s\"", path);
  f->fd = -1;
  size_t tlen = strlen(path) + 64;
  f->tmp = malloc(tlen);
  rc = mn_strdup(path, &f->path, err);
  if (rc != MN_OK) goto out;
  if (!f->tmp) {
    rc = mn_error_set(err, MN_ERR_NOMEM, "out of memory opening \"%s\"", path);
    goto out;
  }
  snprintf(f->tmp, tlen, "%s.tmp.%ld.%lu", path, (long)getpid(),
           (unsigned long)atomic_fetch_add(&tmp_counter, 1));
  f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)mode);
  if (f->fd < 0) {
    rc = mn_error_set(err, MN_ERR_IO, "could not create \"%s\": %s", f->tmp, strerror(errno));
    goto out;
  }
  *out = f;
  f = NULL;
out:
  free_file(f);
  assert((rc == MN_OK) == (*out != NULL));
  return rc;
}

mn_status mn_atomic_write(mn_atomic_file *f, const void *p, size_t n, mn_error *err)
{
  const char *c = p;
  while (n > 0) {
    ssize_t w;
    if (mn_fault__hit(MN_FAULT_WRITE)) {
      w = -1;
      errno = EIO;
    } else {
      w = write(f->fd, c, n > (1u << 30) ? (1u << 30) : n);
    }
    if (w < 0) {
      if (errno == EINTR) continue;
      return mn_error_set(err, MN_ERR_IO, "could not write \"%s\": %s", f->tmp, strerror(errno));
    }
    c += w;
    n -= (size_t)w;
  }
  return MN_OK;
}

mn_status mn_fsync_parent(const char *path, mn_error *err)
{
  char dir[PATH_MAX];
  const char *slash = strrchr(path, '/');
  if (!slash) {
    snprintf(dir, sizeof dir, ".");
  } else if (slash == path) {
    snprintf(dir, sizeof dir, "/");
  } else {
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  }
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return mn_error_set(err, MN_ERR_IO, "could not open folder \"%s\": %s", dir, strerror(errno));
  int r = mn_fault__hit(MN_FAULT_FSYNC) ? (errno = EIO, -1) : fsync(fd);
  int e = errno;
  close(fd);
  if (r != 0)
    return mn_error_set(err, MN_ERR_IO, "could not fsync folder \"%s\": %s", dir, strerror(e));
  return MN_OK;
}

mn_status mn_atomic_commit(mn_atomic_file *f, mn_error *err)
{
  mn_status rc = MN_OK;
  int r = mn_fault__hit(MN_FAULT_FSYNC) ? (errno = EIO, -1) : fsync(f->fd);
  if (r != 0) {
    rc = mn_error_set(err, MN_ERR_IO, "could not fsync \"%s\": %s", f->tmp, strerror(errno));
    goto fail;
  }
  r = close(f->fd);
  f->fd = -1;
  if (r != 0) {
    rc = mn_error_set(err, MN_ERR_IO, "could not close \"%s\": %s", f->tmp, strerror(errno));
    goto fail;
  }
  if (mn_atomic__before_rename) mn_atomic__before_rename(f->tmp, f->path);
  if (rename(f->tmp, f->path) != 0) {
    rc = mn_error_set(err, MN_ERR_IO, "could not rename \"%s\" to \"%s\": %s", f->tmp, f->path,
                      strerror(errno));
    goto fail;
  }
  rc = mn_fsync_parent(f->path, err);
  free_file(f);
  return rc;
fail:
  mn_atomic_abort(f);
  return rc;
}

void mn_atomic_abort(mn_atomic_file *f)
{
  if (!f) return;
  if (f->fd >= 0) close(f->fd);
  unlink(f->tmp);
  free_file(f);
}

mn_status mn_write_file_atomic(const char *path, const void *p, size_t n, unsigned mode,
                               mn_error *err)
{
  mn_atomic_file *f = NULL;
  mn_status rc = mn_atomic_open(path, mode, &f, err);
  if (rc != MN_OK) return rc;
  rc = mn_atomic_write(f, p, n, err);
  if (rc != MN_OK) {
    mn_atomic_abort(f);
    return rc;
  }
  return mn_atomic_commit(f, err);
}

mn_status mn_copy_file_atomic(const char *src, const char *dst, unsigned mode, mn_error *err)
{
  int fd = open(src, O_RDONLY | O_CLOEXEC); /* follows a symlink: the file it names is copied */
  if (fd < 0)
    return mn_error_set(err, MN_ERR_IO, "could not open \"%s\": %s", src, strerror(errno));
  mn_atomic_file *f = NULL;
  mn_status rc = mn_atomic_open(dst, mode, &f, err);
  char buf[1 << 15];
  while (rc == MN_OK) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) rc = mn_error_set(err, MN_ERR_IO, "could not read \"%s\": %s", src, strerror(errno));
    if (n <= 0) break;
    rc = mn_atomic_write(f, buf, (size_t)n, err);
  }
  close(fd);
  if (rc != MN_OK) {
    mn_atomic_abort(f);
    return rc;
  }
  return mn_atomic_commit(f, err);
}
