/*
 * test_cuda_probe.c -- the CUDA backend sees the device (label gpu).
 * Without a device (or a driver) it exits 77: ctest reports it as skipped.
 */
#include "kernels/kernels.h"
#include "tests/test.h"

int main(void)
{
  kernels_device_info info;
  mn_error err = {0};
  mn_status rc = kernels_cuda_probe(&info, &err);
  if (rc != MN_OK) {
    fprintf(stderr, "probe failed: %s\n", err.msg);
    return 1;
  }
  if (info.device_count == 0) {
    printf("skipped: %s (runtime %d, driver %d)\n", info.why, info.runtime_version,
           info.driver_version);
    return 77;
  }
  printf("device 0: %s, compute %d.%d, %.1f GiB, runtime %d, driver %d, cuBLAS %d\n", info.name,
         info.cc_major, info.cc_minor, (double)info.total_mem / (1 << 30), info.runtime_version,
         info.driver_version, info.cublas_version);
  T_CHECK(info.built);
  T_CHECK(info.name[0] != '\0');
  T_CHECK(info.cc_major >= 7);
  T_CHECK(info.total_mem > (size_t)1 << 30);
  T_CHECK(info.cublas_version > 0);
  T_CHECK(info.driver_version >= info.runtime_version / 1000 * 1000);
  return T_DONE();
}
