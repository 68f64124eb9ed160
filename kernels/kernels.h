/*
 * kernels.h -- the compute backends (DESIGN.md §5).
 *
 * Today: what the CUDA side can see of the machine.  The backend table
 * (matmul, layernorm, attention, ...) arrives with the trainer.  No CUDA
 * header is included here or anywhere outside kernels/cuda/.
 */
#ifndef MNEMO_KERNELS_H
#define MNEMO_KERNELS_H

#include "common/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kernels_device_info {
  bool built;       /* false when mnemo was built without the CUDA backend */
  int device_count; /* 0: no usable device or driver */
  char name[256];   /* device 0 */
  int cc_major, cc_minor;
  size_t total_mem;    /* bytes, device 0 */
  int runtime_version; /* e.g. 13000 */
  int driver_version;  /* 0 when no driver */
  int cublas_version;  /* e.g. 130000; 0 when no device */
  char why[256];       /* why device_count is 0 */
} kernels_device_info;

/*
 * kernels_cuda_probe -- fill info with what CUDA sees.  No device, or a
 * build without CUDA, is not an error: device_count is 0 and why says why.
 * MN_ERR_CUDA is returned (with file:line) when a device exists but fails.
 */
MN_NODISCARD mn_status kernels_cuda_probe(kernels_device_info *info /* OUT */, mn_error *err);

#ifdef __cplusplus
}
#endif
#endif /* MNEMO_KERNELS_H */
