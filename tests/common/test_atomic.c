/*
 * test_atomic.c -- atomic file replacement: readers see the old file or the
 * whole new one, whatever fails or crashes in between.
 */
#include "common/common.h"
#include "tests/test.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];
static char path[128];

static char *slurp(const char *p)
{
  mn_buf b;
  mn_buf_init(&b, 1 << 20);
  if (mn_buf_read_file(&b, p, NULL) != MN_OK) {
    mn_buf_fini(&b);
    return NULL;
  }
  return b.data; /* the caller frees */
}

static int count_entries(void)
{
  int n = 0;
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d && (e = readdir(d)))
    n += e->d_name[0] != '.';
  if (d) closedir(d);
  return n;
}

static void remove_temps(void)
{
  DIR *d = opendir(dir);
  struct dirent *e;
  char p[256];
  while (d && (e = readdir(d))) {
    if (strstr(e->d_name, ".tmp.")) {
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      unlink(p);
    }
  }
  if (d) closedir(d);
}

static void write_and_replace(void)
{
  mn_error err = {0};
  T_EQ_INT(mn_write_file_atomic(path, "old content", 11, 0640, &err), MN_OK);
  char *s = slurp(path);
  T_EQ_STR(s, "old content");
  free(s);
  struct stat st;
  T_EQ_INT(stat(path, &st), 0);
  T_EQ_INT(st.st_mode & 0777, 0640);
  T_EQ_INT(mn_write_file_atomic(path, "new", 3, 0640, &err), MN_OK);
  s = slurp(path);
  T_EQ_STR(s, "new");
  free(s);
  T_EQ_INT(count_entries(), 1); /* no temporary file left behind */
  T_EQ_INT(mn_write_file_atomic("/nonexistent-dir/f", "x", 1, 0600, &err), MN_ERR_IO);
  T_CONTAINS(err.msg, "/nonexistent-dir/f");
}

static void die_now(const char *tmp, const char *target)
{
  (void)tmp;
  (void)target;
  raise(SIGKILL);
}

/* the writer is killed after its data is synced and before the rename */
static void crash_between_write_and_rename(void)
{
  mn_error err = {0};
  T_EQ_INT(mn_write_file_atomic(path, "old content", 11, 0600, &err), MN_OK);
  pid_t pid = fork();
  if (pid == 0) {
    mn_atomic__before_rename = die_now;
    mn_error e2;
    (void)!mn_write_file_atomic(path, "NEW CONTENT THAT MUST NOT APPEAR", 32, 0600, &e2);
    _exit(0); /* not reached */
  }
  int status = 0;
  T_EQ_INT(waitpid(pid, &status, 0), pid);
  T_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  char *s = slurp(path);
  T_EQ_STR(s, "old content");
  free(s);
  T_EQ_INT(count_entries(), 2); /* the stray temporary file is all the crash left */
  remove_temps();
}

/* sweep: make each write and each fsync fail in turn */
static void fault_sweep(void)
{
  mn_error err = {0};
  T_EQ_INT(mn_write_file_atomic(path, "old content", 11, 0600, &err), MN_OK);
  for (long n = 1; n <= 3; n++) {
    mn_atomic_file *f = NULL;
    T_EQ_INT(mn_atomic_open(path, 0600, &f, &err), MN_OK);
    mn_fault_arm(MN_FAULT_WRITE, n);
    mn_status rc = MN_OK;
    for (int chunk = 0; chunk < 3 && rc == MN_OK; chunk++)
      rc = mn_atomic_write(f, "chunk", 5, &err);
    T_EQ_INT(rc, MN_ERR_IO);
    T_CONTAINS(err.msg, "could not write");
    mn_atomic_abort(f);
    char *s = slurp(path);
    T_EQ_STR(s, "old content");
    free(s);
    T_EQ_INT(count_entries(), 1);
  }
  mn_fault_arm(MN_FAULT_WRITE, 0);

  /* the file's fsync fails: nothing changes */
  mn_fault_arm(MN_FAULT_FSYNC, 1);
  T_EQ_INT(mn_write_file_atomic(path, "new", 3, 0600, &err), MN_ERR_IO);
  T_CONTAINS(err.msg, "could not fsync");
  char *s = slurp(path);
  T_EQ_STR(s, "old content");
  free(s);
  T_EQ_INT(count_entries(), 1);

  /* the folder's fsync fails: the rename happened, and the caller is told it may not last */
  mn_fault_arm(MN_FAULT_FSYNC, 2);
  T_EQ_INT(mn_write_file_atomic(path, "new", 3, 0600, &err), MN_ERR_IO);
  T_CONTAINS(err.msg, "fsync folder");
  s = slurp(path);
  T_EQ_STR(s, "new");
  free(s);
  T_EQ_INT(count_entries(), 1);

  /* allocation failure at open */
  mn_fault_arm(MN_FAULT_ALLOC, 1);
  mn_atomic_file *f = (mn_atomic_file *)1;
  T_EQ_INT(mn_atomic_open(path, 0600, &f, &err), MN_ERR_NOMEM);
  T_CHECK(f == NULL);
  T_EQ_INT(count_entries(), 1);
}

int main(void)
{
  umask(022); /* the mode check below must not depend on the caller's umask */
  snprintf(dir, sizeof dir, "/tmp/mnemo-test-atomic-XXXXXX");
  if (!mkdtemp(dir)) return 1;
  snprintf(path, sizeof path, "%s/state.bin", dir);
  T_RUN(write_and_replace);
  T_RUN(crash_between_write_and_rename);
  T_RUN(fault_sweep);
  unlink(path);
  remove_temps();
  rmdir(dir);
  return T_DONE();
}
