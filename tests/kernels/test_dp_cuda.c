/*
 * test_dp_cuda.c -- data parallel's all-reduce (label gpu): world 1 through NCCL (the mean of
 * one rank is itself), and, on a machine with two or more GPUs, two processes that meet
 * through an id file and average different buffers.  A stale id file from an earlier run is
 * not taken for this one's.  Exits 77 without a device, or without NCCL in the build.
 */
#define _POSIX_C_SOURCE 200809L
#include "kernels/kernels.h"

#include "tests/test.h"

#include <math.h>
#include <sys/wait.h>
#include <unistd.h>

static const kernels_backend *gpu;

/* rank_run -- rank r of world averages n values r + i / n; 0 when every value is right */
static int rank_run(int r, int world, const char *id)
{
  mn_error err = {0};
  char why[256];
  kernels_dp *dp = NULL;
  if (kernels_cuda(KERNELS_MATH_FP32, &gpu, why, &err) != MN_OK || !gpu) return 2;
  size_t n = 1000003;
  float *h = malloc(n * sizeof *h), *d = gpu->mem_alloc(n * sizeof *d);
  for (size_t i = 0; i < n; i++)
    h[i] = (float)r + (float)i / (float)n;
  gpu->to_device(d, h, n * sizeof *d);
  if (kernels_dp_open(r, world, id, 60, &dp, &err) != MN_OK ||
      kernels_dp_allreduce_mean(dp, d, n, &err) != MN_OK || gpu->sync(&err) != MN_OK) {
    fprintf(stderr, "rank %d: %s\n", r, err.msg);
    return 3;
  }
  gpu->to_host(h, d, n * sizeof *h);
  float mean_rank = (float)(world - 1) / 2.0f;
  size_t bad = 0;
  for (size_t i = 0; i < n; i++)
    bad += fabsf(h[i] - (mean_rank + (float)i / (float)n)) > 1e-5f;
  kernels_dp_close(dp);
  gpu->mem_free(d, n * sizeof *d);
  free(h);
  return bad ? 4 : 0;
}

static void world_of_one(void)
{
  char id[] = "/tmp/mnemo-dp-XXXXXX";
  int fd = mkstemp(id);
  T_CHECK(fd >= 0);
  close(fd); /* a stale file: rank 0 replaces it */
  T_EQ_INT(rank_run(0, 1, id), 0);
  unlink(id);
}

/* devices -- the GPUs the probe sees, asked in a child: a process that has used CUDA must not
 * fork children that use it, and the parent forks the ranks */
static int devices(void)
{
  pid_t p = fork();
  if (p == 0) {
    kernels_device_info info;
    mn_error err = {0};
    _exit(kernels_cuda_probe(&info, &err) != MN_OK ? 255
          : info.device_count > 100                ? 100
                                                   : info.device_count);
  }
  int st = 0;
  waitpid(p, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

static int ndev;

static void two_processes(void)
{
  if (ndev < 2) {
    printf("two_processes: skipped (%d GPU)\n", ndev);
    return;
  }
  char id[64];
  snprintf(id, sizeof id, "/tmp/mnemo-dp-%d.id", (int)getpid());
  pid_t kids[2];
  for (int r = 0; r < 2; r++) {
    kids[r] = fork();
    if (kids[r] == 0) {
      char lr[8];
      snprintf(lr, sizeof lr, "%d", r);
      setenv("MNEMO_LOCAL_RANK", lr, 1);
      _exit(rank_run(r, 2, id));
    }
  }
  for (int r = 0; r < 2; r++) {
    int st = 0;
    waitpid(kids[r], &st, 0);
    T_CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "rank %d exited %d", r, WEXITSTATUS(st));
  }
  unlink(id);
}

int main(void)
{
  mn_error err = {0};
  kernels_dp *dp = NULL;
  /* built without NCCL: the stub says so without touching the device */
  if (kernels_dp_open(0, 1, "/dev/null", 1, &dp, &err) != MN_OK && strstr(err.msg, "without")) {
    printf("test_dp_cuda: skipped (%s)\n", err.msg);
    return 77;
  }
  kernels_dp_close(dp);
  ndev = devices();
  if (ndev == 255) {
    fprintf(stderr, "test_dp_cuda: the probe failed\n");
    return 1;
  }
  if (ndev == 0) {
    printf("test_dp_cuda: skipped (no CUDA device)\n");
    return 77;
  }
  T_RUN(two_processes); /* first: this process has not used CUDA yet */
  T_RUN(world_of_one);
  return T_DONE();
}
