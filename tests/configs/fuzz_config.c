/*
 * fuzz_config.c -- libFuzzer target for the config loader.
 *
 * Any input must give MN_OK or MN_ERR_CONFIG with a message that names the
 * file, never a crash, a leak, or a message without a place.
 */
#include "configs/config.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  mn_config cfg;
  mn_error err = {0};
  mn_status rc = mn_config_load_buffer("fuzz.yaml", (const char *)data, size, &cfg, &err);
  if (rc == MN_OK) {
    mn_buf b;
    mn_buf_init(&b, 1 << 20);
    if (mn_config_dump(&cfg, &b, &err) != MN_OK) abort();
    mn_buf_fini(&b);
    mn_config_fini(&cfg);
  } else if (rc != MN_ERR_CONFIG || strncmp(err.msg, "fuzz.yaml", 9) != 0) {
    abort();
  }
  return 0;
}
