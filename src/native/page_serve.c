/*
 * u2cm native local page server: one session of CRIU's page-server protocol (criu/page-xfer.c)
 * served to a `criu lazy-pages --page-server` daemon from the destination's own slot files, on a
 * thread of its own (src/engine/native_page_server.ts runs u2cm_ps_serve as a nonblocking FFI
 * call), so that no request waits for the JavaScript event loop. Built into the same .so as shim.c
 * (src/native/build.ts SOURCES); names are prefixed (u2cm_ps_ / ps_) because a compiled binary's
 * build concatenates every source into one translation unit.
 *
 * Every page passes the check of the session's book (page_check.c: read from its slot, hashed and
 * compared with the source's manifest hash) before it is sent. A page that fails it is never
 * sent: the session stops answering, u2cm_ps_serve returns PS_REFUSED with the reason
 * (u2cm_ps_why), and the connection is kept open until u2cm_ps_free, so that the caller can
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

/* The session's book of processes and their manifests, and the page check (page_check.c). */
#define PS_HIDDEN __attribute__((visibility("hidden")))
struct ps_book;
PS_HIDDEN struct ps_book *ps_book_new(void);
PS_HIDDEN int32_t ps_book_add(struct ps_book *b, int64_t pid, const char *path,
                              const double *slots, uint32_t nslots, const double *areas,
                              uint32_t nareas);
PS_HIDDEN int32_t ps_book_set_manifest(struct ps_book *b, pthread_mutex_t *mu, int64_t pid,
                                       int32_t in_manifest, const double *addrs,
                                       const uint8_t *hashes, uint32_t naddrs);
PS_HIDDEN int ps_book_read_checked(struct ps_book *b, uint64_t pid, uint64_t vaddr, uint32_t nr,
                                   uint8_t *buf, char *why, size_t cap);
PS_HIDDEN void ps_book_free(struct ps_book *b);

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

struct u2cm_ps {
  int listen_fd;
  int conn_fd;
  uint32_t iov_bytes;
  uint16_t port;
  struct ps_book *book;
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
  h->book = ps_book_new();
  if (!h->book) {
    free(h);
    errno = ENOMEM;
    return NULL;
  }
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
    ps_book_free(h->book);
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
  return ps_book_add(h->book, pid, path, slots, nslots, areas, nareas);
}

/*
 * Give process `pid` (added before) its manifest, or replace it: 0, -ESRCH when it was not
 * added, or -ENOMEM. Call it before u2cm_ps_serve or while the session is held: the serving
 * thread reads a manifest only after ps_wait_release, under the same mutex.
 */
int32_t u2cm_ps_set_manifest(struct u2cm_ps *h, int64_t pid, int32_t in_manifest,
                             const double *addrs, const uint8_t *hashes, uint32_t naddrs) {
  return ps_book_set_manifest(h->book, &h->mu, pid, in_manifest, addrs, hashes, naddrs);
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
    if (ps_book_read_checked(h->book, pid, vaddr, nr, h->buf, h->why, sizeof h->why) != 0) {
      return PS_REFUSED;
    }
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
  ps_book_free(h->book);
  free(h->buf);
  pthread_mutex_destroy(&h->mu);
  pthread_cond_destroy(&h->cv);
  free(h);
}
