/*
 * u2cm native local page server: one session of CRIU's page-server protocol (criu/page-xfer.c)
 * served to a `criu lazy-pages --page-server` daemon from the destination's own slot files, on a
 * thread of its own (src/engine/native_page_server.ts runs u2cm_ps_serve as a nonblocking FFI
 * call), so that no request waits for the JavaScript event loop. Built into the same .so as shim.c
 * (src/native/build.ts SOURCES); names are prefixed (u2cm_ps_ / ps_) because a compiled binary's
 * build concatenates every source into one translation unit.
 *
 * Every page is read from its slot (pread), hashed with u2cm_hash_page (shim.c) and compared with
 * the source's manifest hash before it is sent; a page touching an allowed area (a thread's rseq
 * area or dead stack, page_allowance.ts) is compared by the hash of the page with those bytes
 * zeroed, as the source hashed it. A page that differs, or one the manifest or the images do not
 * hold, is never sent: the session stops answering, u2cm_ps_serve returns PS_REFUSED with the
 * reason (u2cm_ps_why), and the connection is kept open until u2cm_ps_free, so that the caller can
 * end the restored tree while its faults still wait (the daemon sees the cut only after that).
 *
 *  - u2cm_ps_open(iov_bytes): a session on a fresh loopback listening socket (u2cm_ps_port).
 *  - u2cm_ps_add_proc: one process's slot file, slot addresses and allowed areas (copied: the
 *    caller's buffers may go once it returned); the process has no manifest yet.
 *  - u2cm_ps_serve: accept the daemon and serve until CLOSE, a refusal, an error or u2cm_ps_stop.
 *  - u2cm_ps_stats / u2cm_ps_why: the figures (readable while the session runs) and the reason.
 *  - u2cm_ps_set_manifest: give or replace a process's manifest (copied), before the session
 *    serves or while it is held (the destination's image check may decode it only then).
 *  - u2cm_ps_hold(h, on): answer no request while held (the restored tree is stopped).
 *  - u2cm_ps_stop: wake and end the session; u2cm_ps_free once u2cm_ps_serve returned.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

void u2cm_hash_page(const uint8_t *data, uint32_t len, uint64_t *out);

#define PS_PAGE 4096u
#define PS_IOV_ADD_F 6u
#define PS_IOV_GET 7u
#define PS_IOV_CLOSE 0x1023u
#define PS_IOV_FORCE_CLOSE 0x1024u
#define PS_PE_PRESENT 4u /* PE_PRESENT (criu/include/pagemap.h) */
/* Pages one answer may carry (CRIU asks for at most 4 MiB: 1024 pages). */
#define PS_MAX_ANSWER_PAGES 16384u
#define PS_WHY 512

/* u2cm_ps_serve's results. */
#define PS_CLOSED 0     /* the daemon's CLOSE was answered: every page it wanted was served */
#define PS_REFUSED 1    /* a request was refused (u2cm_ps_why); the connection is still open */
#define PS_STOPPED 2    /* u2cm_ps_stop ended it before the daemon came */

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

struct u2cm_ps {
  int listen_fd;
  int conn_fd;
  uint32_t iov_bytes;
  uint16_t port;
  struct ps_proc *procs;
  uint32_t nprocs;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int held;
  int stop;
  /* figures: written by the serving thread, read with atomics */
  uint64_t requests;
  uint64_t checked;
  uint64_t closed;
  uint64_t serve_ns; /* time spent reading, checking and sending */
  char why[PS_WHY];
  uint8_t *buf;
  size_t buf_cap;
};

__attribute__((format(printf, 2, 3))) static void ps_set_why(struct u2cm_ps *h, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(h->why, sizeof h->why, fmt, ap);
  va_end(ap);
}

static uint64_t ps_now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* A session listening on 127.0.0.1 (a free port); NULL with errno set when the socket fails. */
struct u2cm_ps *u2cm_ps_open(uint32_t iov_bytes) {
  struct u2cm_ps *h = calloc(1, sizeof *h);
  if (!h) return NULL;
  h->conn_fd = -1;
  h->iov_bytes = iov_bytes == 24 ? 24 : 32;
  pthread_mutex_init(&h->mu, NULL);
  pthread_cond_init(&h->cv, NULL);
  h->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (h->listen_fd < 0 || bind(h->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      listen(h->listen_fd, 1) != 0 || getsockname(h->listen_fd, (struct sockaddr *)&a, &len) != 0) {
    int err = errno;
    if (h->listen_fd >= 0) close(h->listen_fd);
    free(h);
    errno = err;
    return NULL;
  }
  h->port = ntohs(a.sin_port);
  return h;
}

/* The loopback port the daemon connects to. */
int32_t u2cm_ps_port(struct u2cm_ps *h) { return h->port; }

/*
 * Add process `pid`: its slot file (path, NUL-terminated; opened now), the addresses of its
 * `nslots` slots (doubles: exact below 2^53) and `nareas` allowed areas (start, end pairs of
 * doubles). Its manifest comes with u2cm_ps_set_manifest; until then no page of it is served.
 * Returns 0 or -errno.
 */
int32_t u2cm_ps_add_proc(struct u2cm_ps *h, int64_t pid, const char *path, const double *slots,
                         uint32_t nslots, const double *areas, uint32_t nareas) {
  struct ps_proc *grown = realloc(h->procs, (h->nprocs + 1) * sizeof *grown);
  if (!grown) return -ENOMEM;
  h->procs = grown;
  struct ps_proc *p = &h->procs[h->nprocs];
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
  h->nprocs++;
  return 0;
}

/*
 * Give process `pid` (added before) its manifest, or replace it: 0, -ESRCH when it was not
 * added, or -ENOMEM. Call it before u2cm_ps_serve or while the session is held: the serving
 * thread reads a manifest only after ps_wait_release, under the same mutex.
 */
int32_t u2cm_ps_set_manifest(struct u2cm_ps *h, int64_t pid, int32_t in_manifest,
                             const double *addrs, const uint8_t *hashes, uint32_t naddrs) {
  uint64_t *a = malloc((size_t)naddrs * 8 + 8);
  uint8_t *x = malloc((size_t)naddrs * 16 + 16);
  if (!a || !x) {
    free(a);
    free(x);
    return -ENOMEM;
  }
  for (uint32_t i = 0; i < naddrs; i++) a[i] = (uint64_t)addrs[i];
  if (naddrs) memcpy(x, hashes, (size_t)naddrs * 16);
  pthread_mutex_lock(&h->mu);
  struct ps_proc *p = NULL;
  for (uint32_t i = 0; i < h->nprocs; i++) {
    if (h->procs[i].pid == pid) p = &h->procs[i];
  }
  if (p) {
    free(p->addrs);
    free(p->hashes);
    p->addrs = a;
    p->hashes = x;
    p->naddrs = naddrs;
    p->in_manifest = in_manifest != 0;
  }
  pthread_mutex_unlock(&h->mu);
  if (!p) {
    free(a);
    free(x);
    return -ESRCH;
  }
  return 0;
}

static struct ps_proc *ps_find(struct u2cm_ps *h, uint64_t pid) {
  for (uint32_t i = 0; i < h->nprocs; i++) {
    if ((uint64_t)h->procs[i].pid == pid) return &h->procs[i];
  }
  return NULL;
}

/* The first index of a[0..n) whose value is >= v. */
static uint32_t ps_lower_bound(const uint64_t *a, uint32_t n, uint64_t v) {
  uint32_t lo = 0, hi = n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (a[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

static int ps_read_full(int fd, void *buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = recv(fd, (uint8_t *)buf + got, len - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) return 0;
    got += (size_t)n;
  }
  return 1;
}

static int ps_send_all(int fd, struct iovec *iov, int n) {
  while (n > 0) {
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = iov;
    m.msg_iovlen = (size_t)n;
    ssize_t sent = sendmsg(fd, &m, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    while (n > 0 && (size_t)sent >= iov->iov_len) {
      sent -= (ssize_t)iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (uint8_t *)iov->iov_base + sent;
      iov->iov_len -= (size_t)sent;
    }
  }
  return 0;
}

/*
 * Read pages vaddr … (nr) of `pid` from its slot file into h->buf and check each against the
 * manifest: 0 when every page matches, else -1 with h->why set (the messages of the TypeScript
 * server, local_page_server.ts, word for word).
 */
static int ps_read_checked(struct u2cm_ps *h, uint64_t pid, uint64_t vaddr, uint32_t nr) {
  struct ps_proc *p = ps_find(h, pid);
  if (!p) {
    ps_set_why(h, "pid %" PRIu64 ": page 0x%" PRIx64 " is not in the images", pid, vaddr);
    return -1;
  }
  uint32_t lo = ps_lower_bound(p->slots, p->nslots, vaddr);
  if ((uint64_t)lo + nr > p->nslots || p->slots[lo] != vaddr ||
      p->slots[lo + nr - 1] != vaddr + (uint64_t)(nr - 1) * PS_PAGE) {
    ps_set_why(h, "pid %" PRIu64 ": page 0x%" PRIx64 " (%u pages) is not one run of the images",
               pid, vaddr, nr);
    return -1;
  }
  size_t len = (size_t)nr * PS_PAGE, got = 0;
  while (got < len) {
    ssize_t n = pread(p->fd, h->buf + got, len - got, (off_t)((uint64_t)lo * PS_PAGE + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ps_set_why(h, "pid %" PRIu64 ": page 0x%" PRIx64 ": the slot file ends early", pid, vaddr);
      return -1;
    }
    got += (size_t)n;
  }
  struct ps_proc *m = p;
  if (!m->in_manifest) {
    ps_set_why(h, "pid %" PRIu64 " is not in the manifest", pid);
    return -1;
  }
  uint32_t k = ps_lower_bound(m->addrs, m->naddrs, vaddr);
  uint8_t masked[PS_PAGE];
  for (uint32_t i = 0; i < nr; i++, k++) {
    uint64_t addr = vaddr + (uint64_t)i * PS_PAGE;
    if (k >= m->naddrs || m->addrs[k] != addr) {
      ps_set_why(h, "pid %" PRIu64 ": page 0x%" PRIx64 " is not in the manifest", pid, addr);
      return -1;
    }
    const uint8_t *page = h->buf + (size_t)i * PS_PAGE;
    int on = 0;
    for (uint32_t a = 0; a < m->nareas; a++) {
      uint64_t s = m->areas[2 * a], e = m->areas[2 * a + 1];
      if (s < addr + PS_PAGE && e > addr) {
        if (!on) memcpy(masked, page, PS_PAGE);
        on = 1;
        uint64_t from = s > addr ? s - addr : 0, to = e - addr < PS_PAGE ? e - addr : PS_PAGE;
        if (to > from) memset(masked + from, 0, to - from);
      }
    }
    uint64_t got_hash[2];
    u2cm_hash_page(on ? masked : page, PS_PAGE, got_hash);
    if (memcmp(got_hash, m->hashes + (size_t)k * 16, 16) != 0) {
      ps_set_why(h, "pid %" PRIu64 ": page 0x%" PRIx64 " differs from the manifest", pid, addr);
      return -1;
    }
  }
  return 0;
}

static int ps_stopped(struct u2cm_ps *h) { return __atomic_load_n(&h->stop, __ATOMIC_ACQUIRE); }

/* Wait while held; 1 when the session is to stop. */
static int ps_wait_release(struct u2cm_ps *h) {
  pthread_mutex_lock(&h->mu);
  while (h->held && !h->stop) pthread_cond_wait(&h->cv, &h->mu);
  int stop = h->stop;
  pthread_mutex_unlock(&h->mu);
  return stop;
}

/* u2cm_ps_stop cut a session before its CLOSE: not every page was placed. */
static int32_t ps_cut(struct u2cm_ps *h) {
  ps_set_why(h, "page session: the session was closed before every page was placed");
  return PS_REFUSED;
}

/*
 * Serve the daemon's one session (blocking: run it on a thread). Returns PS_CLOSED, PS_REFUSED
 * (u2cm_ps_why says why; the connection stays open until u2cm_ps_free; a session cut by
 * u2cm_ps_stop before its CLOSE is refused too) or PS_STOPPED (stopped before the daemon came).
 */
int32_t u2cm_ps_serve(struct u2cm_ps *h) {
  int fd;
  for (;;) {
    fd = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0 || errno != EINTR || ps_stopped(h)) break;
  }
  pthread_mutex_lock(&h->mu);
  close(h->listen_fd);
  h->listen_fd = -1;
  if (fd >= 0 && h->stop) {
    close(fd);
    fd = -1;
  }
  h->conn_fd = fd;
  pthread_mutex_unlock(&h->mu);
  if (fd < 0) return PS_STOPPED; /* stopped before the daemon came */
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  uint8_t iov[32];
  for (;;) {
    int r = ps_read_full(fd, iov, h->iov_bytes);
    if (ps_stopped(h)) return ps_cut(h);
    if (r < 0) {
      ps_set_why(h, "page session: %s", strerror(-r));
      return PS_REFUSED;
    }
    if (r == 0) {
      /* Without its CLOSE the daemon did not place every page: the copy cannot run on. */
      ps_set_why(h, "the lazy-pages daemon left before every page was placed");
      return PS_REFUSED;
    }
    uint64_t t0 = ps_now_ns();
    uint32_t cmd32, nr32;
    uint64_t nr64, vaddr, pid;
    memcpy(&cmd32, iov, 4);
    uint32_t cmd = cmd32 & 0xffff;
    if (cmd == PS_IOV_CLOSE || cmd == PS_IOV_FORCE_CLOSE) {
      uint32_t status = 0; /* every page was served */
      struct iovec out = {&status, 4};
      int w = ps_send_all(fd, &out, 1);
      if (w < 0) {
        ps_set_why(h, "page session: %s", strerror(-w));
        return PS_REFUSED;
      }
      __atomic_store_n(&h->closed, 1, __ATOMIC_RELEASE);
      uint8_t one_byte;
      ps_read_full(fd, &one_byte, 1); /* the daemon closes once it has the status */
      return PS_CLOSED;
    }
    if (cmd != PS_IOV_GET) {
      ps_set_why(h, "unexpected page-server command %u", cmd);
      return PS_REFUSED;
    }
    __atomic_add_fetch(&h->requests, 1, __ATOMIC_RELAXED);
    if (h->iov_bytes == 24) {
      memcpy(&nr32, iov + 4, 4);
      nr64 = nr32;
      memcpy(&vaddr, iov + 8, 8);
      memcpy(&pid, iov + 16, 8);
    } else {
      memcpy(&nr64, iov + 8, 8);
      memcpy(&vaddr, iov + 16, 8);
      memcpy(&pid, iov + 24, 8);
    }
    if (nr64 < 1 || nr64 > PS_MAX_ANSWER_PAGES) {
      ps_set_why(h, "a request of %" PRIu64 " pages", nr64);
      return PS_REFUSED;
    }
    uint32_t nr = (uint32_t)nr64;
    if (ps_wait_release(h)) return ps_cut(h);
    t0 = ps_now_ns();
    size_t len = (size_t)nr * PS_PAGE;
    if (h->buf_cap < len) {
      uint8_t *grown = realloc(h->buf, len);
      if (!grown) {
        ps_set_why(h, "page session: out of memory for %u pages", nr);
        return PS_REFUSED;
      }
      h->buf = grown;
      h->buf_cap = len;
    }
    if (ps_read_checked(h, pid, vaddr, nr) != 0) return PS_REFUSED;
    __atomic_add_fetch(&h->checked, nr, __ATOMIC_RELAXED);
    uint32_t head = (PS_PE_PRESENT << 16) | PS_IOV_ADD_F;
    memcpy(iov, &head, 4);
    struct iovec out[2] = {{iov, h->iov_bytes}, {h->buf, len}};
    int w = ps_send_all(fd, out, 2);
    __atomic_add_fetch(&h->serve_ns, ps_now_ns() - t0, __ATOMIC_RELAXED);
    if (w < 0) {
      if (ps_stopped(h)) return ps_cut(h);
      ps_set_why(h, "page session: %s", strerror(-w));
      return PS_REFUSED;
    }
  }
}

/* The figures: out[0] requests, [1] checked pages, [2] closed (1/0), [3] serving nanoseconds. */
void u2cm_ps_stats(struct u2cm_ps *h, uint64_t *out) {
  out[0] = __atomic_load_n(&h->requests, __ATOMIC_RELAXED);
  out[1] = __atomic_load_n(&h->checked, __ATOMIC_RELAXED);
  out[2] = __atomic_load_n(&h->closed, __ATOMIC_ACQUIRE);
  out[3] = __atomic_load_n(&h->serve_ns, __ATOMIC_RELAXED);
}

/* Copy why the session refused (NUL-terminated, at most cap bytes) into out; its length. */
int32_t u2cm_ps_why(struct u2cm_ps *h, char *out, uint32_t cap) {
  if (cap == 0) return 0;
  size_t n = strnlen(h->why, sizeof h->why);
  if (n >= cap) n = cap - 1;
  memcpy(out, h->why, n);
  out[n] = 0;
  return (int32_t)n;
}

/* Hold (on = 1) or release (on = 0) the answers. */
void u2cm_ps_hold(struct u2cm_ps *h, int32_t on) {
  pthread_mutex_lock(&h->mu);
  h->held = on != 0;
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
}

/* End the session: stop listening, cut the connection, wake a held or blocked u2cm_ps_serve. */
void u2cm_ps_stop(struct u2cm_ps *h) {
  pthread_mutex_lock(&h->mu);
  __atomic_store_n(&h->stop, 1, __ATOMIC_RELEASE);
  if (h->listen_fd >= 0) shutdown(h->listen_fd, SHUT_RDWR);
  if (h->conn_fd >= 0) shutdown(h->conn_fd, SHUT_RDWR);
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
}

/* Free the session (after u2cm_ps_serve returned, or when it never ran). */
void u2cm_ps_free(struct u2cm_ps *h) {
  if (!h) return;
  if (h->listen_fd >= 0) close(h->listen_fd);
  if (h->conn_fd >= 0) close(h->conn_fd);
  for (uint32_t i = 0; i < h->nprocs; i++) {
    struct ps_proc *p = &h->procs[i];
    if (p->fd >= 0) close(p->fd);
    free(p->slots);
    free(p->addrs);
    free(p->hashes);
    free(p->areas);
  }
  free(h->procs);
  free(h->buf);
  pthread_mutex_destroy(&h->mu);
  pthread_cond_destroy(&h->cv);
  free(h);
}
