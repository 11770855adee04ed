/*
 * C unit tests of the native shim, run natively and (cross-built) under qemu-aarch64-static by
 * build/shim.ts. Exit status 0 = all passed; each failure prints one line.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int32_t u2cm_abi_version(void);
void u2cm_hash_page(const uint8_t *data, uint32_t len, uint64_t *out);
int64_t u2cm_pagemap_select_buf(const uint64_t *entries, uint32_t n, uint32_t base_index,
                                uint64_t any_mask, uint64_t all_mask, uint32_t *out,
                                uint64_t *resident);
int64_t u2cm_resident_map(int32_t fd, uint64_t addr, uint32_t npages, int32_t use_scan,
                          uint8_t *present, uint32_t *scratch);
int32_t u2cm_scan_available(int32_t fd);
int64_t u2cm_hash_diff(int32_t pid, uint64_t addr, uint32_t npages, const uint8_t *present,
                       uint64_t *hashes, uint8_t *known, uint32_t *dirty, uint8_t *buf,
                       uint32_t buf_pages, uint64_t *stats);

static int failures = 0;
#define CHECK(cond, ...)                                                                         \
  do {                                                                                           \
    if (!(cond)) {                                                                               \
      failures++;                                                                                \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                       \
      fprintf(stderr, __VA_ARGS__);                                                              \
      fprintf(stderr, "\n");                                                                     \
    }                                                                                            \
  } while (0)

static void test_hash_flips_on_every_bit(void) {
  static uint8_t page[4096];
  uint64_t base[2], h[2];
  memset(page, 0, sizeof page);
  u2cm_hash_page(page, 4096, base);
  u2cm_hash_page(page, 4096, h);
  CHECK(h[0] == base[0] && h[1] == base[1], "hash is not deterministic");
  int same = 0;
  for (uint32_t bit = 0; bit < 4096 * 8; bit++) {
    page[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    u2cm_hash_page(page, 4096, h);
    if (h[0] == base[0] || h[1] == base[1]) same++;
    page[bit / 8] ^= (uint8_t)(1u << (bit % 8));
  }
  CHECK(same == 0, "%d single-bit flips left a hash half unchanged", same);
  /* swapping two words must change the hash (lanes are position-dependent) */
  uint64_t w1 = 1, w2 = 2;
  memcpy(page, &w1, 8);
  memcpy(page + 64, &w2, 8);
  u2cm_hash_page(page, 4096, base);
  memcpy(page, &w2, 8);
  memcpy(page + 64, &w1, 8);
  u2cm_hash_page(page, 4096, h);
  CHECK(h[0] != base[0] && h[1] != base[1], "swapping two words kept the hash");
}

static void test_select_buf(void) {
  const uint64_t present = 1ULL << 63, swapped = 1ULL << 62, sd = 1ULL << 55;
  uint64_t e[6] = {present | sd | 7, present | 9, 0, swapped | sd, sd, present | sd};
  uint32_t out[6];
  uint64_t resident = 0;
  int64_t k = u2cm_pagemap_select_buf(e, 6, 100, present | swapped, sd, out, &resident);
  CHECK(k == 3, "soft-dirty resident selection found %lld, want 3", (long long)k);
  CHECK(k == 3 && out[0] == 100 && out[1] == 103 && out[2] == 105, "wrong indices");
  CHECK(resident == 4, "resident %llu, want 4", (unsigned long long)resident);
}

static void test_hash_diff_on_own_memory(void) {
  const uint32_t n = 64;
  uint8_t *mem = mmap(0, n * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(mem != MAP_FAILED, "mmap failed");
  if (mem == MAP_FAILED) return;
  for (uint32_t i = 0; i < n; i++) mem[i * 4096] = (uint8_t)i;
  uint8_t present[64], known[64] = {0};
  uint64_t hashes[128];
  uint32_t dirty[64], scratch[64];
  uint8_t *buf = malloc(16 * 4096);
  uint64_t stats[3];
  int fd = open("/proc/self/pagemap", O_RDONLY);
  CHECK(fd >= 0, "open pagemap");
  int64_t res = u2cm_resident_map(fd, (uint64_t)(uintptr_t)mem, n, 0, present, scratch);
  CHECK(res == n, "pagemap resident %lld, want %u", (long long)res, n);
  if (u2cm_scan_available(fd)) {
    uint8_t present2[64];
    int64_t res2 = u2cm_resident_map(fd, (uint64_t)(uintptr_t)mem, n, 1, present2, scratch);
    CHECK(res2 == n, "PAGEMAP_SCAN resident %lld, want %u", (long long)res2, n);
  }
  memset(present, 1, n);
  int64_t k = u2cm_hash_diff(getpid(), (uint64_t)(uintptr_t)mem, n, present, hashes, known, dirty,
                             buf, 16, stats);
  if (k == -38 /* ENOSYS: qemu-user does not emulate process_vm_readv */) {
    printf("note: process_vm_readv is not available here (qemu-user); hash diff checked natively\n");
    close(fd);
    free(buf);
    munmap(mem, n * 4096);
    return;
  }
  CHECK(k == n, "baseline reported %lld dirty, want %u", (long long)k, n);
  mem[3 * 4096 + 100] ^= 1;
  mem[40 * 4096 + 4095] ^= 0x80;
  k = u2cm_hash_diff(getpid(), (uint64_t)(uintptr_t)mem, n, present, hashes, known, dirty, buf, 16,
                     stats);
  CHECK(k == 2 && dirty[0] == 3 && dirty[1] == 40, "diff reported %lld dirty pages", (long long)k);
  k = u2cm_hash_diff(getpid(), (uint64_t)(uintptr_t)mem, n, present, hashes, known, dirty, buf, 16,
                     stats);
  CHECK(k == 0, "unchanged memory reported %lld dirty", (long long)k);
  /* a page that becomes unreadable is forgotten, not reported */
  mprotect(mem + 10 * 4096, 4096, PROT_NONE);
  k = u2cm_hash_diff(getpid(), (uint64_t)(uintptr_t)mem, n, present, hashes, known, dirty, buf, 16,
                     stats);
  CHECK(k == 0 && stats[1] == 1 && known[10] == 0, "PROT_NONE page: %lld dirty, %llu unreadable",
        (long long)k, (unsigned long long)stats[1]);
  close(fd);
  free(buf);
  munmap(mem, n * 4096);
}

int main(void) {
  CHECK(u2cm_abi_version() == 1, "abi version");
  test_hash_flips_on_every_bit();
  test_select_buf();
  test_hash_diff_on_own_memory();
  if (failures == 0) printf("shim C tests: all passed\n");
  return failures == 0 ? 0 : 1;
}
