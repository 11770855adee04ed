/*
 * The baseline of the tracker benchmark: a plain C loop that reads `npages` pages of process `pid`
 * from `addr` with process_vm_readv (1 MiB at a time) and hashes each page with the shim's hash.
 *
 *   hashloop PID HEXADDR NPAGES REPEAT   → prints "seconds <s>" (best of REPEAT)
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <time.h>

void u2cm_hash_page(const uint8_t *data, uint32_t len, uint64_t *out);

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 5) return 2;
  int pid = atoi(argv[1]);
  uint64_t addr = strtoull(argv[2], 0, 16);
  long npages = atol(argv[3]), repeat = atol(argv[4]);
  static uint8_t buf[256 * 4096];
  uint64_t sink = 0, h[2];
  double best = 1e9;
  for (long r = 0; r < repeat; r++) {
    double t0 = now_s();
    for (long i = 0; i < npages; i += 256) {
      long n = npages - i < 256 ? npages - i : 256;
      struct iovec local = {buf, (size_t)n * 4096};
      struct iovec remote = {(void *)(uintptr_t)(addr + (uint64_t)i * 4096), (size_t)n * 4096};
      if (process_vm_readv(pid, &local, 1, &remote, 1, 0) != n * 4096) return 1;
      for (long j = 0; j < n; j++) {
        u2cm_hash_page(buf + j * 4096, 4096, h);
        sink ^= h[0];
      }
    }
    double t = now_s() - t0;
    if (t < best) best = t;
  }
  printf("seconds %.6f sink %llu\n", best, (unsigned long long)(sink & 1));
  return 0;
}
