/*
 * probe.cu -- what the CUDA runtime, the driver and cuBLAS see on this machine.
 *
 * Used by the tests labelled gpu (they skip cleanly without a device), by `mnemo bench`
 * to name the device it measured, and by scripts/gpu-check (test_cuda_probe) before it
 * runs anything else.
 */
#include "kernels/cuda/cuda_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kernels__local_device(int count)
{
  static const char *const vars[] = {"MNEMO_LOCAL_RANK", "LOCAL_RANK", "SLURM_LOCALID",
                                     "OMPI_COMM_WORLD_LOCAL_RANK"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
    const char *v = getenv(vars[i]);
    if (v && *v) {
      long r = strtol(v, NULL, 10);
      return count > 0 && r >= 0 ? (int)(r % count) : 0;
    }
  }
  return 0;
}

extern "C" mn_status kernels_cuda_probe(kernels_device_info *info, mn_error *err)
{
  memset(info, 0, sizeof *info);
  info->built = true;
  CUDA_TRY(cudaRuntimeGetVersion(&info->runtime_version), err);
  if (cudaDriverGetVersion(&info->driver_version) != cudaSuccess) info->driver_version = 0;
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver || count == 0) {
    snprintf(info->why, sizeof info->why, "%s",
             e == cudaSuccess ? "no CUDA device" : cudaGetErrorString(e));
    (void)cudaGetLastError(); /* clear the sticky error of the failed query */
    return MN_OK;
  }
  CUDA_TRY(e, err);
  info->device_count = count;
  cudaDeviceProp prop;
  CUDA_TRY(cudaGetDeviceProperties(&prop, 0), err);
  snprintf(info->name, sizeof info->name, "%s", prop.name);
  info->cc_major = prop.major;
  info->cc_minor = prop.minor;
  info->total_mem = prop.totalGlobalMem;
  /* the library's version without a handle: the probe leaves the current device alone (a
   * data-parallel rank has chosen its own) */
  int major = 0, minor = 0, patch = 0;
  CUBLAS_TRY(cublasGetProperty(MAJOR_VERSION, &major), err);
  CUBLAS_TRY(cublasGetProperty(MINOR_VERSION, &minor), err);
  CUBLAS_TRY(cublasGetProperty(PATCH_LEVEL, &patch), err);
  info->cublas_version = major * 10000 + minor * 100 + patch;
  return MN_OK;
}
