/*
 * kernels.c -- backend entry points that do not depend on CUDA.
 *
 * When mnemo is built without the CUDA backend (MNEMO_CUDA=OFF, or no nvcc
 * or cuBLAS found), the probe says so instead of failing.
 */
#include "kernels/kernels.h"

#include <stdio.h>
#include <string.h>

#ifndef MNEMO_HAVE_CUDA
mn_status kernels_cuda_probe(kernels_device_info *info, mn_error *err)
{
  (void)err;
  memset(info, 0, sizeof *info);
  snprintf(info->why, sizeof info->why, "mnemo was built without the CUDA backend");
  return MN_OK;
}

mn_status kernels_cuda(kernels_math math, const kernels_backend **out, char why[256], mn_error *err)
{
  (void)math, (void)err;
  *out = NULL;
  snprintf(why, 256, "mnemo was built without the CUDA backend");
  return MN_OK;
}
#endif

bool kernels_math_parse(const char *s, kernels_math *out)
{
  static const char *const names[] = {"fp32", "tf32", "bf16"};
  for (int i = 0; i < 3; i++)
    if (s && strcmp(s, names[i]) == 0) {
      *out = (kernels_math)i;
      return true;
    }
  return false;
}

#ifndef MNEMO_HAVE_NCCL
mn_status kernels_dp_open(int rank, int world, const char *id_file, int timeout_s, kernels_dp **out,
                          mn_error *err)
{
  (void)rank, (void)id_file, (void)timeout_s;
  *out = NULL;
  return mn_error_set(err, MN_ERR_CONFIG,
                      "data parallel over %d processes needs the CUDA backend with NCCL; this "
                      "mnemo was built without them",
                      world);
}

mn_status kernels_dp_allreduce_mean(kernels_dp *dp, float *buf, size_t n, mn_error *err)
{
  (void)dp, (void)buf, (void)n;
  return mn_error_set(err, MN_ERR_CONFIG, "mnemo was built without NCCL");
}

void kernels_dp_close(kernels_dp *dp)
{
  (void)dp;
}
#endif
