/*
 * u2cm native page check: the book of a native page-server session (page_serve.c), one entry per
 * process: its slot file, the addresses of its slots, its allowed areas and its manifest, and the
 * one check every page passes before it is sent (ps_book_read_checked). Built into the same .so as
 * shim.c (src/native/build.ts SOURCES). Its functions are hidden: the shim's exported C API is
 * page_serve.c's u2cm_ps_*; names are prefixed (ps_book_) because a compiled binary's build
 * concatenates every source into one translation unit.
 *
 * A page is read from its slot (pread), hashed with u2cm_hash_page (shim.c) and compared with the
 * source's manifest hash; a page touching an allowed area (a thread's rseq area or dead stack,
 * page_allowance.ts) is compared by the hash of the page with those bytes zeroed, as the source
 * hashed it. A page that differs, or one the manifest or the images do not hold, fails the check
 * with the reason (the messages of the TypeScript server, local_page_server.ts, word for word).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PS_BOOK_HIDDEN __attribute__((visibility("hidden")))
#define PS_BOOK_PAGE 4096u

void u2cm_hash_page(const uint8_t *data, uint32_t len, uint64_t *out);

struct ps_proc {
  int64_t pid;
  int fd;
  uint64_t *slots; /* addresses of the slot file's pages, ascending */
  uint32_t nslots;
  int in_manifest; /* whether the manifest names the process */
  uint64_t *addrs; /* the manifest's addresses, ascending */
  uint8_t *hashes; /* 16 bytes per manifest address */
  uint32_t naddrs;
  uint64_t *areas; /* [start, end) pairs */
  uint32_t nareas;
};

/* The processes of one session. */
struct ps_book {
  struct ps_proc *procs;
  uint32_t nprocs;
};

__attribute__((format(printf, 3, 4))) static void ps_book_why(char *why, size_t cap,
                                                               const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, cap, fmt, ap);
  va_end(ap);
}

/* An empty book; NULL when out of memory. */
PS_BOOK_HIDDEN struct ps_book *ps_book_new(void) { return calloc(1, sizeof(struct ps_book)); }

/*
 * Add process `pid`: its slot file (path, NUL-terminated; opened now), the addresses of its
 * `nslots` slots (doubles: exact below 2^53) and `nareas` allowed areas (start, end pairs of
 * doubles), all copied. It has no manifest until ps_book_set_manifest. Returns 0 or -errno.
 */
PS_BOOK_HIDDEN int32_t ps_book_add(struct ps_book *b, int64_t pid, const char *path,
                                   const double *slots, uint32_t nslots, const double *areas,
                                   uint32_t nareas) {
  struct ps_proc *grown = realloc(b->procs, (b->nprocs + 1) * sizeof *grown);
  if (!grown) return -ENOMEM;
  b->procs = grown;
  struct ps_proc *p = &b->procs[b->nprocs];
  memset(p, 0, sizeof *p);
  p->pid = pid; /* no manifest yet: in_manifest 0, addrs and hashes NULL */
  p->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (p->fd < 0) return -errno;
  p->slots = malloc((size_t)nslots * 8 + 8);
  p->areas = malloc((size_t)nareas * 16 + 16);
  if (!p->slots || !p->areas) {
    free(p->slots);
    free(p->areas);
    close(p->fd);
    return -ENOMEM;
  }
  for (uint32_t i = 0; i < nslots; i++) p->slots[i] = (uint64_t)slots[i];
  for (uint32_t i = 0; i < 2 * nareas; i++) p->areas[i] = (uint64_t)areas[i];
  p->nslots = nslots;
  p->nareas = nareas;
  b->nprocs++;
  return 0;
}

/*
 * Give process `pid` (added before) its manifest (copied), or replace it: 0, -ESRCH when it was
 * not added, or -ENOMEM. The swap is made under `mu`, the mutex the serving thread holds while it
 * decides to read a manifest.
 */
PS_BOOK_HIDDEN int32_t ps_book_set_manifest(struct ps_book *b, pthread_mutex_t *mu, int64_t pid,
                                            int32_t in_manifest, const double *addrs,
                                            const uint8_t *hashes, uint32_t naddrs) {
  uint64_t *a = malloc((size_t)naddrs * 8 + 8);
  uint8_t *x = malloc((size_t)naddrs * 16 + 16);
  if (!a || !x) {
    free(a);
    free(x);
    return -ENOMEM;
  }
  for (uint32_t i = 0; i < naddrs; i++) a[i] = (uint64_t)addrs[i];
  if (naddrs) memcpy(x, hashes, (size_t)naddrs * 16);
  pthread_mutex_lock(mu);
  struct ps_proc *p = NULL;
  for (uint32_t i = 0; i < b->nprocs; i++) {
    if (b->procs[i].pid == pid) p = &b->procs[i];
  }
  if (p) {
    free(p->addrs);
    free(p->hashes);
    p->addrs = a;
    p->hashes = x;
    p->naddrs = naddrs;
    p->in_manifest = in_manifest != 0;
  }
  pthread_mutex_unlock(mu);
  if (!p) {
    free(a);
    free(x);
    return -ESRCH;
  }
  return 0;
}

static struct ps_proc *ps_book_find(struct ps_book *b, uint64_t pid) {
  for (uint32_t i = 0; i < b->nprocs; i++) {
    if ((uint64_t)b->procs[i].pid == pid) return &b->procs[i];
  }
  return NULL;
}

/* The first index of a[0..n) whose value is >= v. */
static uint32_t ps_book_lower_bound(const uint64_t *a, uint32_t n, uint64_t v) {
  uint32_t lo = 0, hi = n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (a[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/*
 * Read pages vaddr … (nr) of `pid` from its slot file into buf (nr pages long) and check each
 * against the manifest: 0 when every page matches, else -1 with why (cap bytes) set.
 */
PS_BOOK_HIDDEN int ps_book_read_checked(struct ps_book *b, uint64_t pid, uint64_t vaddr,
                                        uint32_t nr, uint8_t *buf, char *why, size_t cap) {
  struct ps_proc *p = ps_book_find(b, pid);
  if (!p) {
    ps_book_why(why, cap, "pid %" PRIu64 ": page 0x%" PRIx64 " is not in the images", pid, vaddr);
    return -1;
  }
  uint32_t lo = ps_book_lower_bound(p->slots, p->nslots, vaddr);
  if ((uint64_t)lo + nr > p->nslots || p->slots[lo] != vaddr ||
      p->slots[lo + nr - 1] != vaddr + (uint64_t)(nr - 1) * PS_BOOK_PAGE) {
    ps_book_why(why, cap,
                "pid %" PRIu64 ": page 0x%" PRIx64 " (%u pages) is not one run of the images", pid,
                vaddr, nr);
    return -1;
  }
  size_t len = (size_t)nr * PS_BOOK_PAGE, got = 0;
  while (got < len) {
    ssize_t n = pread(p->fd, buf + got, len - got, (off_t)((uint64_t)lo * PS_BOOK_PAGE + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ps_book_why(why, cap, "pid %" PRIu64 ": page 0x%" PRIx64 ": the slot file ends early", pid,
                  vaddr);
      return -1;
    }
    got += (size_t)n;
  }
  if (!p->in_manifest) {
    ps_book_why(why, cap, "pid %" PRIu64 " is not in the manifest", pid);
    return -1;
  }
  uint32_t k = ps_book_lower_bound(p->addrs, p->naddrs, vaddr);
  uint8_t masked[PS_BOOK_PAGE];
  for (uint32_t i = 0; i < nr; i++, k++) {
    uint64_t addr = vaddr + (uint64_t)i * PS_BOOK_PAGE;
    if (k >= p->naddrs || p->addrs[k] != addr) {
      ps_book_why(why, cap, "pid %" PRIu64 ": page 0x%" PRIx64 " is not in the manifest", pid,
                  addr);
      return -1;
    }
    const uint8_t *page = buf + (size_t)i * PS_BOOK_PAGE;
    int on = 0;
    for (uint32_t a = 0; a < p->nareas; a++) {
      uint64_t s = p->areas[2 * a], e = p->areas[2 * a + 1];
      if (s < addr + PS_BOOK_PAGE && e > addr) {
        if (!on) memcpy(masked, page, PS_BOOK_PAGE);
        on = 1;
        uint64_t from = s > addr ? s - addr : 0;
        uint64_t to = e - addr < PS_BOOK_PAGE ? e - addr : PS_BOOK_PAGE;
        if (to > from) memset(masked + from, 0, to - from);
      }
    }
    uint64_t got_hash[2];
    u2cm_hash_page(on ? masked : page, PS_BOOK_PAGE, got_hash);
    if (memcmp(got_hash, p->hashes + (size_t)k * 16, 16) != 0) {
      ps_book_why(why, cap, "pid %" PRIu64 ": page 0x%" PRIx64 " differs from the manifest", pid,
                  addr);
      return -1;
    }
  }
  return 0;
}

/* Close every slot file and free the book (NULL is allowed). */
PS_BOOK_HIDDEN void ps_book_free(struct ps_book *b) {
  if (!b) return;
  for (uint32_t i = 0; i < b->nprocs; i++) {
    struct ps_proc *p = &b->procs[i];
    if (p->fd >= 0) close(p->fd);
    free(p->slots);
    free(p->addrs);
    free(p->hashes);
    free(p->areas);
  }
  free(b->procs);
  free(b);
}
