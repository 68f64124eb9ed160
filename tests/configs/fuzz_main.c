/*
 * fuzz_main.c -- a main() for fuzz targets when the compiler has no libFuzzer
 * (gcc): runs the target once over each file given, so the seed corpus is a
 * regression suite in every build.
 */
#include "common/common.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
  int ran = 0;
  for (int i = 1; i < argc; i++) {
    mn_buf b;
    mn_error err;
    mn_buf_init(&b, 16u << 20);
    if (mn_buf_read_file(&b, argv[i], &err) != MN_OK) {
      fprintf(stderr, "fuzz_main: %s\n", err.msg);
      return 1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)b.data, b.len);
    mn_buf_fini(&b);
    ran++;
  }
  printf("fuzz_main: %d inputs ran\n", ran);
  return ran > 0 ? 0 : 1;
}
