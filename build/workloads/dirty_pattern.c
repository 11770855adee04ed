/*
 * dirty_pattern: a workload with a known dirty-page pattern, for the tracker's tests and benches.
 *
 *   dirty_pattern [--hot N] [--hot-every-ms MS] [--warm N] [--warm-period-ms MS] [--cold N]
 *                 [--children N] [--child-start-ms MS] [--child-life-ms MS]
 *                 [--remap-every-ms MS] [--duration-ms MS]
 *
 * Regions are separate VMAs (PROT_NONE gaps between them), printed on stdout before "ready":
 *   region <name> <hex start address> <pages>
 * hot pages are rewritten every --hot-every-ms (default 2), warm pages every --warm-period-ms
 * (default 1000), cold pages once at start. Children (forked at --child-start-ms) each write a
 * 16-page region of their own every 5 ms and exit after --child-life-ms. With --remap-every-ms the
 * parent cycles a region through mmap, mremap (grow, may move) and munmap. Exits after
 * --duration-ms (default 60000): every run is bounded.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096L

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, 0);
}

static void touch(uint8_t *base, long pages, uint64_t value) {
  for (long i = 0; i < pages; i++) memcpy(base + i * PAGE, &value, sizeof value);
}

static long arg(int argc, char **argv, const char *name, long fallback) {
  for (int i = 1; i + 1 < argc; i++) {
    if (strcmp(argv[i], name) == 0) return atol(argv[i + 1]);
  }
  return fallback;
}

static void child_main(long life_ms) {
  uint8_t *mine = mmap(0, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mine == MAP_FAILED) _exit(1);
  long end = now_ms() + life_ms;
  for (uint64_t v = 1; now_ms() < end; v++) {
    touch(mine, 16, v);
    sleep_ms(5);
  }
  _exit(0);
}

int main(int argc, char **argv) {
  long hot = arg(argc, argv, "--hot", 64), hot_every = arg(argc, argv, "--hot-every-ms", 2);
  long warm = arg(argc, argv, "--warm", 32), warm_period = arg(argc, argv, "--warm-period-ms", 1000);
  long cold = arg(argc, argv, "--cold", 256), children = arg(argc, argv, "--children", 0);
  long child_start = arg(argc, argv, "--child-start-ms", 300);
  long child_life = arg(argc, argv, "--child-life-ms", 500);
  long remap_every = arg(argc, argv, "--remap-every-ms", 0);
  long duration = arg(argc, argv, "--duration-ms", 60000);
  if (hot < 1 || warm < 1 || cold < 1 || hot_every < 1 || warm_period < 1 || duration < 1) {
    fprintf(stderr, "dirty_pattern: sizes and times must be >= 1\n");
    return 2;
  }
  /* one reservation, then three read-write windows separated by PROT_NONE guard pages */
  long total = hot + warm + cold + 4;
  uint8_t *area = mmap(0, total * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (area == MAP_FAILED) return 1;
  uint8_t *hot_p = area + PAGE, *warm_p = hot_p + (hot + 1) * PAGE;
  uint8_t *cold_p = warm_p + (warm + 1) * PAGE;
  mprotect(hot_p, hot * PAGE, PROT_READ | PROT_WRITE);
  mprotect(warm_p, warm * PAGE, PROT_READ | PROT_WRITE);
  mprotect(cold_p, cold * PAGE, PROT_READ | PROT_WRITE);
  touch(hot_p, hot, 1);
  touch(warm_p, warm, 1);
  touch(cold_p, cold, 0xc01d);
  printf("region hot %lx %ld\nregion warm %lx %ld\nregion cold %lx %ld\nready\n",
         (unsigned long)hot_p, hot, (unsigned long)warm_p, warm, (unsigned long)cold_p, cold);
  fflush(stdout);

  long start = now_ms(), next_warm = start + warm_period, next_remap = start + remap_every;
  int forked = 0, remap_step = 0;
  uint8_t *remap = 0;
  long remap_pages = 0;
  for (uint64_t v = 2; now_ms() - start < duration; v++) {
    long t = now_ms();
    touch(hot_p, hot, v);
    if (t >= next_warm) {
      touch(warm_p, warm, v);
      next_warm += warm_period;
    }
    if (children > 0 && !forked && t - start >= child_start) {
      forked = 1;
      for (long i = 0; i < children; i++) {
        pid_t pid = fork();
        if (pid == 0) child_main(child_life);
      }
    }
    if (remap_every > 0 && t >= next_remap) {
      next_remap += remap_every;
      if (remap_step == 0) {
        remap_pages = 8;
        remap = mmap(0, remap_pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                     -1, 0);
        /* VM_DONTCOPY keeps the kernel from merging it with neighbouring anonymous VMAs */
        if (remap != MAP_FAILED) madvise(remap, remap_pages * PAGE, MADV_DONTFORK);
        if (remap != MAP_FAILED) touch(remap, remap_pages, v);
      } else if (remap_step == 1 && remap != MAP_FAILED) {
        remap = mremap(remap, remap_pages * PAGE, 32 * PAGE, MREMAP_MAYMOVE);
        remap_pages = 32;
        if (remap != MAP_FAILED) touch(remap, remap_pages, v);
      } else if (remap_step == 2 && remap != MAP_FAILED) {
        munmap(remap, remap_pages * PAGE);
      }
      remap_step = (remap_step + 1) % 3;
    }
    while (waitpid(-1, 0, WNOHANG) > 0) {
    }
    sleep_ms(hot_every);
  }
  while (wait(0) > 0) {
  }
  return 0;
}
