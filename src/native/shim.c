/*
 * u2cm native shim: the hot loops of the dirty-page tracker, loaded by Deno.dlopen (src/native/ffi.ts).
 *
 * Every function works on one chunk of one mapping per call (up to U2CM_CHUNK_PAGES pages), so the
 * TypeScript side makes a handful of FFI calls per mapping and round, never one per page.
 *
 *  - u2cm_hash_page / u2cm_hash_pages: the 128-bit page hash (4 independent 64-bit lanes of
 *    xxh64-style multiply-rotate rounds, finished with two murmur3 fmix64 avalanches).
 *  - u2cm_resident_map: which pages of a range are resident (present or swapped), from
 *    PAGEMAP_SCAN when the kernel has it, else from a bulk pread of /proc/PID/pagemap.
 *  - u2cm_hash_diff: read the resident pages of another process with process_vm_readv in large
 *    batches, hash each page, compare with the previous round's hash, report the changed ones.
 *  - u2cm_pagemap_select(_buf): pagemap entries matching bit masks (soft-dirty: bit 55), from a live
 *    pagemap file or from recorded pagemap bytes.
 *  - u2cm_scan_select: the same selection through the PAGEMAP_SCAN ioctl (Linux >= 6.7).
 *  - u2cm_kpageflags_select: of the resident pages, those whose page frame has KPF_REFERENCED.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#define U2CM_SHIM_ABI 1
#define PAGE 4096u

/* pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst) */
#define PM_PFN_MASK ((1ULL << 55) - 1)
#define PM_SOFT_DIRTY (1ULL << 55)
#define PM_SWAPPED (1ULL << 62)
#define PM_PRESENT (1ULL << 63)

/* PAGEMAP_SCAN (include/uapi/linux/fs.h, Linux 6.7); defined here for older headers. */
#define U2CM_PAGE_IS_WPALLOWED (1ULL << 0)
#define U2CM_PAGE_IS_WRITTEN (1ULL << 1)
#define U2CM_PAGE_IS_FILE (1ULL << 2)
#define U2CM_PAGE_IS_PRESENT (1ULL << 3)
#define U2CM_PAGE_IS_SWAPPED (1ULL << 4)
#define U2CM_PAGE_IS_PFNZERO (1ULL << 5)
#define U2CM_PAGE_IS_HUGE (1ULL << 6)
#define U2CM_PAGE_IS_SOFT_DIRTY (1ULL << 7)

struct u2cm_page_region {
  uint64_t start;
  uint64_t end;
  uint64_t categories;
};

struct u2cm_pm_scan_arg {
  uint64_t size;
  uint64_t flags;
  uint64_t start;
  uint64_t end;
  uint64_t walk_end;
  uint64_t vec;
  uint64_t vec_len;
  uint64_t max_pages;
  uint64_t category_inverted;
  uint64_t category_mask;
  uint64_t category_anyof_mask;
  uint64_t return_mask;
};

#define U2CM_PAGEMAP_SCAN _IOWR('f', 16, struct u2cm_pm_scan_arg)

int32_t u2cm_abi_version(void) { return U2CM_SHIM_ABI; }

/* open(2) a NUL-terminated path read-only with O_CLOEXEC; returns the fd or -errno. */
int32_t u2cm_open_ro(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  return fd >= 0 ? fd : -errno;
}

/* close(2) a file descriptor from u2cm_open_ro. */
int32_t u2cm_close(int32_t fd) { return close(fd) == 0 ? 0 : -errno; }

/* ---------------------------------------------------------------------------------------------- */
/* 128-bit page hash                                                                              */

static const uint64_t P1 = 0x9E3779B185EBCA87ULL;
static const uint64_t P2 = 0xC2B2AE3D27D4EB4FULL;
static const uint64_t P3 = 0x165667B19E3779F9ULL;
static const uint64_t P4 = 0x85EBCA77C2B2AE63ULL;

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

static inline uint64_t round64(uint64_t acc, uint64_t input) {
  acc += input * P2;
  acc = rotl64(acc, 31);
  return acc * P1;
}

static inline uint64_t load64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

/* Hash `len` bytes (a multiple of 32) into out[0..1]. */
void u2cm_hash_page(const uint8_t *data, uint32_t len, uint64_t *out) {
  uint64_t a = P1 + P2, b = P2, c = 0, d = -P1;
  for (uint32_t i = 0; i + 32 <= len; i += 32) {
    a = round64(a, load64(data + i));
    b = round64(b, load64(data + i + 8));
    c = round64(c, load64(data + i + 16));
    d = round64(d, load64(data + i + 24));
  }
  out[0] = fmix64(rotl64(a, 1) + rotl64(b, 7) + rotl64(c, 12) + rotl64(d, 18) + len);
  out[1] = fmix64((a * P3) ^ rotl64(b, 23) ^ (c * P4) ^ rotl64(d, 41) ^ ((uint64_t)len << 32));
}

/* Hash `npages` consecutive 4 KiB pages of `data` into hashes[2*i..2*i+1]. */
void u2cm_hash_pages(const uint8_t *data, uint32_t npages, uint64_t *hashes) {
  for (uint32_t i = 0; i < npages; i++) u2cm_hash_page(data + (uint64_t)i * PAGE, PAGE, hashes + 2 * i);
}

/* ---------------------------------------------------------------------------------------------- */
/* Residency                                                                                      */

static int64_t pread_full(int fd, void *buf, uint64_t len, uint64_t off) {
  uint64_t done = 0;
  while (done < len) {
    ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) break;
    done += (uint64_t)n;
  }
  return (int64_t)done;
}

/*
 * Select page indices of entries[0..n) with (e & any_mask) != 0 (or any_mask == 0) and
 * (e & all_mask) == all_mask. Adds the count of resident entries to *resident. Returns the count
 * written to out (never more than n).
 */
int64_t u2cm_pagemap_select_buf(const uint64_t *entries, uint32_t n, uint32_t base_index,
                                uint64_t any_mask, uint64_t all_mask, uint32_t *out,
                                uint64_t *resident) {
  int64_t k = 0;
  uint64_t res = 0;
  for (uint32_t i = 0; i < n; i++) {
    uint64_t e = entries[i];
    res += (e & (PM_PRESENT | PM_SWAPPED)) != 0;
    if ((any_mask == 0 || (e & any_mask) != 0) && (e & all_mask) == all_mask) out[k++] = base_index + i;
  }
  if (resident) *resident += res;
  return k;
}

#define PM_BATCH 4096u

/* The same selection reading /proc/PID/pagemap (fd) for `npages` pages from `addr`. */
int64_t u2cm_pagemap_select(int32_t fd, uint64_t addr, uint32_t npages, uint64_t any_mask,
                            uint64_t all_mask, uint32_t *out, uint64_t *resident) {
  uint64_t entries[PM_BATCH];
  int64_t k = 0;
  if (resident) *resident = 0;
  for (uint32_t i = 0; i < npages; i += PM_BATCH) {
    uint32_t m = npages - i < PM_BATCH ? npages - i : PM_BATCH;
    int64_t got = pread_full(fd, entries, (uint64_t)m * 8, (addr / PAGE + i) * 8);
    if (got < 0) return got;
    m = (uint32_t)(got / 8);
    k += u2cm_pagemap_select_buf(entries, m, i, any_mask, all_mask, out + k, resident);
    if (got < (int64_t)PM_BATCH * 8 && i + m < npages) break;
  }
  return k;
}

#define SCAN_REGIONS 512u

/*
 * Select pages of [addr, addr + npages*4096) through PAGEMAP_SCAN: pages with all categories of
 * `category_mask` and any of `anyof_mask`. Returns the count written to out, or -errno
 * (-ENOTTY when the kernel has no PAGEMAP_SCAN).
 */
int64_t u2cm_scan_select(int32_t fd, uint64_t addr, uint32_t npages, uint64_t category_mask,
                         uint64_t anyof_mask, uint32_t *out) {
  struct u2cm_page_region regions[SCAN_REGIONS];
  uint64_t start = addr, end = addr + (uint64_t)npages * PAGE;
  int64_t k = 0;
  while (start < end) {
    struct u2cm_pm_scan_arg arg;
    memset(&arg, 0, sizeof arg);
    arg.size = sizeof arg;
    arg.start = start;
    arg.end = end;
    arg.vec = (uint64_t)(uintptr_t)regions;
    arg.vec_len = SCAN_REGIONS;
    arg.category_mask = category_mask;
    arg.category_anyof_mask = anyof_mask;
    arg.return_mask = category_mask | anyof_mask;
    long n = ioctl(fd, U2CM_PAGEMAP_SCAN, &arg);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    for (long r = 0; r < n; r++) {
      for (uint64_t p = regions[r].start; p < regions[r].end; p += PAGE) {
        out[k++] = (uint32_t)((p - addr) / PAGE);
      }
    }
    if (arg.walk_end <= start) break;
    start = arg.walk_end;
  }
  return k;
}

/* Probe PAGEMAP_SCAN on an open pagemap fd: 1 when the ioctl works, 0 when not. */
int32_t u2cm_scan_available(int32_t fd) {
  struct u2cm_page_region region;
  struct u2cm_pm_scan_arg arg;
  memset(&arg, 0, sizeof arg);
  arg.size = sizeof arg;
  arg.vec = (uint64_t)(uintptr_t)&region;
  arg.vec_len = 1;
  arg.category_anyof_mask = U2CM_PAGE_IS_PRESENT;
  arg.return_mask = U2CM_PAGE_IS_PRESENT;
  return ioctl(fd, U2CM_PAGEMAP_SCAN, &arg) >= 0 ? 1 : 0;
}

/*
 * Fill present[0..npages) with 1 for resident pages (present or swapped) of the range and 0 for
 * the rest. use_scan selects PAGEMAP_SCAN over a pagemap pread. Returns the resident count or -errno.
 */
int64_t u2cm_resident_map(int32_t fd, uint64_t addr, uint32_t npages, int32_t use_scan,
                          uint8_t *present, uint32_t *scratch) {
  int64_t k;
  memset(present, 0, npages);
  if (use_scan) {
    k = u2cm_scan_select(fd, addr, npages, 0, U2CM_PAGE_IS_PRESENT | U2CM_PAGE_IS_SWAPPED, scratch);
  } else {
    k = u2cm_pagemap_select(fd, addr, npages, PM_PRESENT | PM_SWAPPED, 0, scratch, 0);
  }
  if (k < 0) return k;
  for (int64_t i = 0; i < k; i++) present[scratch[i]] = 1;
  return k;
}

/* ---------------------------------------------------------------------------------------------- */
/* Content-hash diff                                                                              */

/*
 * Hash the resident pages of pid's [addr, addr + npages*4096) and diff them against the previous
 * round.
 *   present  in:  1 = page is resident (from u2cm_resident_map)
 *   hashes   in/out: 2 u64 per page, the last hash seen
 *   known    in/out: 1 = hashes[] holds a hash for the page
 *   dirty    out:  indices of pages that are new or whose hash changed
 *   buf      scratch of buf_pages pages for process_vm_readv
 *   stats    out:  [0] pages read, [1] pages unreadable, [2] pages dropped (known, now absent)
 * Returns the number of dirty pages, or -errno (-ESRCH: the process is gone; -EPERM: not allowed).
 * Pages that stop being resident are forgotten (known = 0), not reported dirty.
 */
int64_t u2cm_hash_diff(int32_t pid, uint64_t addr, uint32_t npages, const uint8_t *present,
                       uint64_t *hashes, uint8_t *known, uint32_t *dirty, uint8_t *buf,
                       uint32_t buf_pages, uint64_t *stats) {
  int64_t k = 0;
  uint64_t read_pages = 0, unreadable = 0, dropped = 0;
  uint32_t i = 0;
  while (i < npages) {
    if (!present[i]) {
      if (known[i]) {
        known[i] = 0;
        dropped++;
      }
      i++;
      continue;
    }
    uint32_t run = 1;
    while (i + run < npages && run < buf_pages && present[i + run]) run++;
    struct iovec local = {buf, (size_t)run * PAGE};
    struct iovec remote = {(void *)(uintptr_t)(addr + (uint64_t)i * PAGE), (size_t)run * PAGE};
    ssize_t got = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (got < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == ESRCH || err == EPERM || err == ENOMEM || err == ENOSYS) return -err;
      got = 0; /* EFAULT and friends: the first page cannot be read */
    }
    uint32_t full = (uint32_t)((uint64_t)got / PAGE);
    for (uint32_t j = 0; j < full; j++) {
      uint64_t h[2];
      u2cm_hash_page(buf + (uint64_t)j * PAGE, PAGE, h);
      uint32_t p = i + j;
      if (!known[p] || hashes[2 * p] != h[0] || hashes[2 * p + 1] != h[1]) {
        hashes[2 * p] = h[0];
        hashes[2 * p + 1] = h[1];
        known[p] = 1;
        dirty[k++] = p;
      }
    }
    read_pages += full;
    if (full < run) {
      /* the page at i + full could not be read (unmapped meanwhile, PROT_NONE, ...) */
      if (known[i + full]) {
        known[i + full] = 0;
        dropped++;
      }
      unreadable++;
      i += full + 1;
    } else {
      i += run;
    }
  }
  if (stats) {
    stats[0] = read_pages;
    stats[1] = unreadable;
    stats[2] = dropped;
  }
  return k;
}

/* ---------------------------------------------------------------------------------------------- */
/* Access bits                                                                                    */

/*
 * Of the resident pages of [addr, addr + npages*4096) (pagemap fd), select those whose page frame
 * has KPF_REFERENCED (bit 2) in /proc/kpageflags (kflags_fd). Needs root (PFNs are hidden
 * otherwise). Returns the count written to out, or -errno; -ENODATA when PFNs read as zero.
 */
int64_t u2cm_kpageflags_select(int32_t fd, int32_t kflags_fd, uint64_t addr, uint32_t npages,
                               uint32_t *out) {
  uint64_t entries[PM_BATCH];
  int64_t k = 0;
  int saw_pfn = 0, saw_present = 0;
  for (uint32_t i = 0; i < npages; i += PM_BATCH) {
    uint32_t m = npages - i < PM_BATCH ? npages - i : PM_BATCH;
    int64_t got = pread_full(fd, entries, (uint64_t)m * 8, (addr / PAGE + i) * 8);
    if (got < 0) return got;
    m = (uint32_t)(got / 8);
    for (uint32_t j = 0; j < m; j++) {
      uint64_t e = entries[j];
      if (!(e & PM_PRESENT)) continue;
      saw_present = 1;
      uint64_t pfn = e & PM_PFN_MASK;
      if (pfn == 0) continue;
      saw_pfn = 1;
      uint64_t flags;
      if (pread_full(kflags_fd, &flags, 8, pfn * 8) != 8) continue;
      if (flags & (1ULL << 2)) out[k++] = i + j;
    }
    if (m < PM_BATCH && i + m < npages) break;
  }
  if (saw_present && !saw_pfn) return -ENODATA;
  return k;
}
