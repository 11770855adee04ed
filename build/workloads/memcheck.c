/*
 * memcheck: a workload that verifies its own memory and keeps a counter, for migration tests.
 *
 * It maps --mib MiB of anonymous memory and fills every page with a pattern derived from the
 * page's index and its generation (how often it was rewritten; generations live in a separate
 * array). Every tick it rewrites --write-pages pages (chosen from the first --hot-percent of
 * the region), checks --check-pages random pages, increments a counter, and prints one line:
 *
 *   tick <counter> pid <getpid> gen <sum of generations> ok
 *
 * SIGUSR1 asks for a full verification of every page: "verify ok <pages>" or "verify FAIL ...".
 * Any mismatch prints "CORRUPT page <i> ..." and exits with status 3. stdout is line-buffered
 * so a test can follow the file it is redirected to.
 *
 * Usage: memcheck [--mib N] [--write-pages N] [--hot-percent P | --hot-mib N] [--check-pages N]
 *                 [--interval-ms N] [--seed N]
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define WORDS (PAGE / 8u)

static volatile sig_atomic_t verify_requested = 0;
static volatile sig_atomic_t stop_requested = 0;

static void on_usr1(int sig) { (void)sig; verify_requested = 1; }
static void on_term(int sig) { (void)sig; stop_requested = 1; }

static uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

static void fill(uint64_t *page, uint64_t index, uint32_t gen) {
  uint64_t seed = mix((index << 20) ^ gen);
  for (unsigned w = 0; w < WORDS; w++) page[w] = seed + w * 0x9e3779b97f4a7c15ULL;
}

static int check(const uint64_t *page, uint64_t index, uint32_t gen) {
  uint64_t seed = mix((index << 20) ^ gen);
  for (unsigned w = 0; w < WORDS; w++) {
    if (page[w] != seed + w * 0x9e3779b97f4a7c15ULL) return (int)w + 1;
  }
  return 0;
}

static uint64_t rng_state;
static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static long arg(int argc, char **argv, const char *name, long def) {
  for (int i = 1; i + 1 < argc; i++) {
    if (strcmp(argv[i], name) == 0) return strtol(argv[i + 1], NULL, 10);
  }
  return def;
}

int main(int argc, char **argv) {
  long mib = arg(argc, argv, "--mib", 16);
  long write_pages = arg(argc, argv, "--write-pages", 64);
  long hot_percent = arg(argc, argv, "--hot-percent", 25);
  long check_pages = arg(argc, argv, "--check-pages", 256);
  long interval_ms = arg(argc, argv, "--interval-ms", 20);
  long hot_mib = arg(argc, argv, "--hot-mib", 0); /* a fixed hot set, whatever --mib is */
  rng_state = (uint64_t)arg(argc, argv, "--seed", 88172645463325252L) | 1;
  if (mib < 1 || hot_percent < 1 || hot_percent > 100 || interval_ms < 1) {
    fprintf(stderr, "memcheck: bad arguments\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGUSR1, on_usr1);
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);

  uint64_t pages = (uint64_t)mib * 256u;
  uint64_t hot = pages * (uint64_t)hot_percent / 100u;
  if (hot_mib > 0) hot = (uint64_t)hot_mib * 256u < pages ? (uint64_t)hot_mib * 256u : pages;
  if (hot == 0) hot = 1;
  uint64_t *mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
  uint32_t *gens = calloc(pages, sizeof(uint32_t));
  if (mem == MAP_FAILED || gens == NULL) {
    fprintf(stderr, "memcheck: out of memory\n");
    return 2;
  }
  for (uint64_t i = 0; i < pages; i++) fill(mem + i * WORDS, i, 0);
  printf("ready pid %d pages %llu\n", getpid(), (unsigned long long)pages);

  uint64_t counter = 0, gen_sum = 0;
  struct timespec pause = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};
  while (!stop_requested) {
    for (long k = 0; k < write_pages; k++) {
      uint64_t i = rnd() % hot;
      gens[i]++;
      gen_sum++;
      fill(mem + i * WORDS, i, gens[i]);
    }
    for (long k = 0; k < check_pages; k++) {
      uint64_t i = rnd() % pages;
      int bad = check(mem + i * WORDS, i, gens[i]);
      if (bad) {
        printf("CORRUPT page %llu word %d gen %u\n", (unsigned long long)i, bad - 1, gens[i]);
        return 3;
      }
    }
    if (verify_requested) {
      verify_requested = 0;
      for (uint64_t i = 0; i < pages; i++) {
        int bad = check(mem + i * WORDS, i, gens[i]);
        if (bad) {
          printf("verify FAIL page %llu word %d gen %u\n", (unsigned long long)i, bad - 1,
                 gens[i]);
          printf("CORRUPT page %llu\n", (unsigned long long)i);
          return 3;
        }
      }
      printf("verify ok %llu\n", (unsigned long long)pages);
    }
    counter++;
    printf("tick %llu pid %d gen %llu ok\n", (unsigned long long)counter, getpid(),
           (unsigned long long)gen_sum);
    nanosleep(&pause, NULL);
  }
  printf("stopped at %llu\n", (unsigned long long)counter);
  return 0;
}
