/*
 * write_loop: a write-heavy workload that reports its own throughput.
 *
 *   write_loop MIB DURATION_MS
 *
 * Fills MIB MiB, prints "ready", then for DURATION_MS rewrites 64-byte slices of pseudo-random
 * pages and finally prints "writes <count>" (the count of page writes done). Bounded in time.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: write_loop MIB DURATION_MS\n");
    return 2;
  }
  long mib = atol(argv[1]), duration = atol(argv[2]);
  if (mib < 1 || duration < 1) return 2;
  long pages = mib * 256;
  uint8_t *mem = mmap(0, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return 1;
  memset(mem, 1, pages * 4096);
  printf("ready\n");
  fflush(stdout);
  uint64_t x = 88172645463325252ULL, writes = 0;
  long end = now_ms() + duration;
  while (now_ms() < end) {
    for (int i = 0; i < 4096; i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      memset(mem + (x % pages) * 4096 + (x >> 52) % 64 * 64, (int)x, 64);
      writes++;
    }
  }
  printf("writes %llu\n", (unsigned long long)writes);
  return 0;
}
