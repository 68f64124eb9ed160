/*
 * host_mem.c -- large zeroed host buffers backed by transparent huge pages.
 *
 * The model's parameters, optimizer moments and activations are gigabytes that
 * sgemm's packing routines walk with large strides; with 4 KiB pages most of
 * those strides miss the TLB.  Debian's kernels run transparent huge pages in
 * "madvise" mode, so a buffer gets 2 MiB pages only when asked: we map it
 * 2 MiB-aligned and advise MADV_HUGEPAGE.  Where the kernel refuses the advice the
 * buffer still works with small pages.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, MADV_HUGEPAGE */
#include "kernels/kernels.h"

#include <stdint.h>
#include <sys/mman.h>

#define HUGE_PAGE ((size_t)2 << 20)

static size_t round_up(size_t n, size_t to)
{
  return (n + to - 1) / to * to;
}

void *kernels_host_alloc(size_t bytes)
{
  if (bytes == 0) bytes = 1;
  size_t len = round_up(bytes, HUGE_PAGE);
  if (len < bytes || len > SIZE_MAX - HUGE_PAGE) return NULL;
  /* over-map by one huge page, then trim both ends to a 2 MiB-aligned range */
  char *raw =
      mmap(NULL, len + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return NULL;
  char *p = (char *)round_up((uintptr_t)raw, HUGE_PAGE);
  if (p > raw) munmap(raw, (size_t)(p - raw));
  size_t tail = (size_t)(raw + len + HUGE_PAGE - (p + len));
  if (tail) munmap(p + len, tail);
#ifdef MADV_HUGEPAGE
  (void)madvise(p, len, MADV_HUGEPAGE); /* advice only: small pages work too */
#endif
  return p;
}

void kernels_host_free(void *p, size_t bytes)
{
  if (!p) return;
  if (bytes == 0) bytes = 1;
  munmap(p, round_up(bytes, HUGE_PAGE));
}
