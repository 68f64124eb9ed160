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

mn_status kernels_cuda(bool tf32, const kernels_backend **out, char why[256], mn_error *err)
{
  (void)tf32, (void)err;
  *out = NULL;
  snprintf(why, 256, "mnemo was built without the CUDA backend");
  return MN_OK;
}
#endif
