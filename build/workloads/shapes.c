/*
 * shapes: a process tree holding the kinds of state CRIU must carry besides private anonymous
 * memory, each part checked by the program itself, for migration tests.
 *
 *   --shared      MAP_SHARED|MAP_ANONYMOUS memory shared with a forked child: the parent keeps
 *                 rewriting its half, the child wrote the other half and answers pings through
 *                 a shared control page (so the mapping must still be shared after a restore)
 *   --sysv        a SysV shm segment (run the tree in its own IPC namespace)
 *   --memfd       a memfd mapped shared; checked through the mapping and through pread
 *   --zombie      a child that exited with status 7 and is not reaped (waitid WNOWAIT checks it)
 *   --fifo PATH   a FIFO (created at PATH) opened read-write, holding 40000 unread bytes
 *   --threads N   N threads, each rewriting its own buffer with a generation kept on its stack
 *   --unix        a stream and a datagram socketpair with unread data queued
 *   --mib N       MiB of each shared region (shared, sysv, memfd) @default 4
 *
 * Every tick (--interval-ms, default 20) the parent rewrites a few pages of each region with a
 * new generation and prints "tick <n> pid <getpid> ok". SIGUSR1 asks for a full check of every
 * part: "verify ok <parts>" or "verify FAIL <part>: <why>" (then exit 3). stdout is line-buffered.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define WORDS (PAGE / 8u)
#define FIFO_BYTES 40000
#define UNIX_BYTES 3000
#define MAX_THREADS 16

static volatile sig_atomic_t verify_requested = 0;
static void on_usr1(int sig) { (void)sig; verify_requested = 1; }

static uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

static void fill(uint64_t *page, uint64_t salt, uint64_t index, uint32_t gen) {
  uint64_t seed = mix((salt << 40) ^ (index << 20) ^ gen);
  for (unsigned w = 0; w < WORDS; w++) page[w] = seed + w * 0x9e3779b97f4a7c15ULL;
}

static int check(const uint64_t *page, uint64_t salt, uint64_t index, uint32_t gen) {
  uint64_t seed = mix((salt << 40) ^ (index << 20) ^ gen);
  for (unsigned w = 0; w < WORDS; w++) {
    if (page[w] != seed + w * 0x9e3779b97f4a7c15ULL) return (int)w + 1;
  }
  return 0;
}

static uint8_t byte_at(uint64_t salt, size_t i) { return (uint8_t)(mix(salt * 1000003u + i) >> 17); }

static char failure[512];

static int fail(const char *part, const char *fmt, long a, long b) {
  char why[256];
  snprintf(why, sizeof why, fmt, a, b);
  snprintf(failure, sizeof failure, "%s: %s", part, why);
  return 0;
}

/* A region of pages with a generation per page (generations live in private memory). */
struct region {
  const char *name;
  uint64_t salt;
  uint64_t *mem;
  uint32_t *gens;
  uint64_t pages;
  uint64_t writable; /* pages [0, writable) are rewritten by the parent */
};

static void region_init(struct region *r, const char *name, uint64_t salt, void *mem,
                        uint64_t pages, uint64_t writable) {
  r->name = name;
  r->salt = salt;
  r->mem = mem;
  r->pages = pages;
  r->writable = writable;
  r->gens = calloc(pages, sizeof(uint32_t));
  for (uint64_t i = 0; i < writable; i++) fill(r->mem + i * WORDS, salt, i, 0);
}

static void region_touch(struct region *r, uint64_t *rng) {
  for (int k = 0; k < 8 && r->writable; k++) {
    *rng ^= *rng << 13, *rng ^= *rng >> 7, *rng ^= *rng << 17;
    uint64_t i = *rng % r->writable;
    fill(r->mem + i * WORDS, r->salt, i, ++r->gens[i]);
  }
}

static int region_check(struct region *r) {
  for (uint64_t i = 0; i < r->pages; i++) {
    int bad = check(r->mem + i * WORDS, r->salt, i, r->gens[i]);
    if (bad) return fail(r->name, "page %ld word %ld differs", (long)i, bad - 1);
  }
  return 1;
}

/* --shared: control page shared with the child. */
struct control {
  volatile uint64_t ping, pong, child_ready;
};

/* --threads */
struct worker {
  pthread_t thread;
  uint64_t *buf;
  volatile uint64_t asked, answered, failed;
};
static struct worker workers[MAX_THREADS];

static void *worker_main(void *arg) {
  struct worker *w = arg;
  uint32_t gen = 0; /* lives on this thread's stack and in its registers */
  uint64_t salt = 0x7700 + (uint64_t)(w - workers);
  for (int i = 0; i < 16; i++) fill(w->buf + i * WORDS, salt, i, gen);
  struct timespec nap = {0, 5 * 1000000L};
  for (;;) {
    /* Checked before the rewrite: a restore between iterations must keep buffer and gen equal. */
    if (w->asked != w->answered) {
      uint64_t asked = w->asked;
      for (int i = 0; i < 16; i++) {
        if (check(w->buf + i * WORDS, salt, i, gen)) w->failed = asked;
      }
      w->answered = asked;
    }
    gen++;
    for (int i = 0; i < 16; i++) fill(w->buf + i * WORDS, salt, i, gen);
    nanosleep(&nap, NULL);
  }
  return NULL;
}

static long arg(int argc, char **argv, const char *name, long def) {
  for (int i = 1; i + 1 < argc; i++) {
    if (strcmp(argv[i], name) == 0) return strtol(argv[i + 1], NULL, 10);
  }
  return def;
}

static const char *sarg(int argc, char **argv, const char *name) {
  for (int i = 1; i + 1 < argc; i++) {
    if (strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return NULL;
}

static int flag(int argc, char **argv, const char *name) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], name) == 0) return 1;
  }
  return 0;
}

static int read_exact_nonblock(int fd, uint8_t *buf, size_t want, size_t *got) {
  *got = 0;
  for (;;) {
    ssize_t n = read(fd, buf + *got, want + 1 - *got);
    if (n > 0) {
      *got += (size_t)n;
      if (*got > want) return 0;
      continue;
    }
    return n < 0 && errno == EAGAIN;
  }
}

static void sleep_ms(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

static void die(const char *what) {
  fprintf(stderr, "shapes: %s: %s\n", what, strerror(errno));
  exit(2);
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGUSR1, on_usr1);
  long mib = arg(argc, argv, "--mib", 4);
  long interval_ms = arg(argc, argv, "--interval-ms", 20);
  long nthreads = arg(argc, argv, "--threads", 0);
  const char *fifo_path = sarg(argc, argv, "--fifo");
  int want_shared = flag(argc, argv, "--shared"), want_sysv = flag(argc, argv, "--sysv");
  int want_memfd = flag(argc, argv, "--memfd"), want_zombie = flag(argc, argv, "--zombie");
  int want_unix = flag(argc, argv, "--unix");
  if (mib < 1 || interval_ms < 1 || nthreads < 0 || nthreads > MAX_THREADS) {
    fprintf(stderr, "shapes: bad arguments\n");
    return 2;
  }
  uint64_t pages = (uint64_t)mib * 256u;
  char parts[256] = "";
  uint64_t rng = 88172645463325252ULL;

  struct region shared = {0}, sysv = {0}, memfd = {0};
  struct control *ctl = NULL;
  pid_t sharer = 0, zombie = 0;
  int memfd_fd = -1, fifo_fd = -1, us[2] = {-1, -1}, ud[2] = {-1, -1};

  if (want_shared) {
    void *mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ctl = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED || ctl == MAP_FAILED) die("mmap shared");
    region_init(&shared, "shared", 1, mem, pages, pages / 2);
    sharer = fork();
    if (sharer < 0) die("fork");
    if (sharer == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      for (uint64_t i = pages / 2; i < pages; i++) fill(shared.mem + i * WORDS, 1, i, 0);
      ctl->child_ready = 1;
      for (;;) {
        if (ctl->ping != ctl->pong) ctl->pong = ctl->ping;
        sleep_ms(2);
      }
    }
    while (!ctl->child_ready) sleep_ms(1);
    strcat(parts, " shared");
  }
  if (want_sysv) {
    int id = shmget(IPC_PRIVATE, pages * PAGE, IPC_CREAT | 0600);
    if (id < 0) die("shmget");
    void *mem = shmat(id, NULL, 0);
    if (mem == (void *)-1) die("shmat");
    region_init(&sysv, "sysv", 2, mem, pages, pages);
    strcat(parts, " sysv");
  }
  if (want_memfd) {
    memfd_fd = memfd_create("shapes", 0);
    if (memfd_fd < 0 || ftruncate(memfd_fd, (off_t)(pages * PAGE)) < 0) die("memfd");
    void *mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd_fd, 0);
    if (mem == MAP_FAILED) die("mmap memfd");
    region_init(&memfd, "memfd", 3, mem, pages, pages);
    strcat(parts, " memfd");
  }
  if (want_zombie) {
    zombie = fork();
    if (zombie < 0) die("fork");
    if (zombie == 0) _exit(7);
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_PID, (id_t)zombie, &info, WEXITED | WNOWAIT) < 0) die("waitid");
    strcat(parts, " zombie");
  }
  if (fifo_path) {
    if (mkfifo(fifo_path, 0600) < 0 && errno != EEXIST) die("mkfifo");
    fifo_fd = open(fifo_path, O_RDWR | O_NONBLOCK);
    if (fifo_fd < 0) die("open fifo");
    uint8_t buf[FIFO_BYTES];
    for (size_t i = 0; i < FIFO_BYTES; i++) buf[i] = byte_at(4, i);
    if (write(fifo_fd, buf, FIFO_BYTES) != FIFO_BYTES) die("write fifo");
    strcat(parts, " fifo");
  }
  if (want_unix) {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, us) < 0) die("socketpair");
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, ud) < 0) die("socketpair");
    uint8_t buf[UNIX_BYTES];
    for (size_t i = 0; i < UNIX_BYTES; i++) buf[i] = byte_at(5, i);
    if (write(us[0], buf, UNIX_BYTES) != UNIX_BYTES) die("write unix");
    for (int m = 0; m < 3; m++) {
      uint8_t msg[100];
      for (size_t i = 0; i < sizeof msg; i++) msg[i] = byte_at(6 + m, i);
      if (send(ud[0], msg, sizeof msg, 0) != (ssize_t)sizeof msg) die("send unix");
    }
    strcat(parts, " unix");
  }
  for (long t = 0; t < nthreads; t++) {
    workers[t].buf = malloc(16 * PAGE);
    if (!workers[t].buf || pthread_create(&workers[t].thread, NULL, worker_main, &workers[t])) {
      die("thread");
    }
  }
  if (nthreads) strcat(parts, " threads");
  printf("ready pid %d parts%s\n", getpid(), parts);

  uint64_t counter = 0, round = 0;
  for (;;) {
    if (want_shared) region_touch(&shared, &rng);
    if (want_sysv) region_touch(&sysv, &rng);
    if (want_memfd) region_touch(&memfd, &rng);
    if (verify_requested) {
      verify_requested = 0;
      round++;
      int ok = 1;
      if (ok && want_shared) {
        ok = region_check(&shared);
        if (ok) {
          for (uint64_t i = pages / 2; i < pages && ok; i++) {
            int bad = check(shared.mem + i * WORDS, 1, i, 0);
            if (bad) ok = fail("shared", "child page %ld word %ld differs", (long)i, bad - 1);
          }
        }
        if (ok) {
          uint64_t token = mix(round + 0x5151);
          ctl->ping = token;
          for (int i = 0; i < 2000 && ctl->pong != token; i++) sleep_ms(1);
          if (ctl->pong != token) ok = fail("shared", "child never answered ping %ld%ld", 0, 0);
        }
      }
      if (ok && want_sysv) ok = region_check(&sysv);
      if (ok && want_memfd) {
        ok = region_check(&memfd);
        uint64_t page[WORDS];
        for (uint64_t i = 0; i < pages && ok; i++) {
          if (pread(memfd_fd, page, PAGE, (off_t)(i * PAGE)) != PAGE) {
            ok = fail("memfd", "pread of page %ld failed (%ld)", (long)i, errno);
          } else if (memcmp(page, memfd.mem + i * WORDS, PAGE) != 0) {
            ok = fail("memfd", "file page %ld differs from the mapping%ld", (long)i, 0);
          }
        }
      }
      if (ok && want_zombie) {
        siginfo_t info;
        memset(&info, 0, sizeof info);
        if (waitid(P_PID, (id_t)zombie, &info, WEXITED | WNOHANG | WNOWAIT) < 0) {
          ok = fail("zombie", "waitid failed (errno %ld)%ld", errno, 0);
        } else if (info.si_pid != zombie || info.si_status != 7) {
          ok = fail("zombie", "pid %ld status %ld", (long)info.si_pid, (long)info.si_status);
        }
      }
      if (ok && fifo_path) {
        uint8_t buf[FIFO_BYTES + 1];
        size_t got;
        if (!read_exact_nonblock(fifo_fd, buf, FIFO_BYTES, &got) || got != FIFO_BYTES) {
          ok = fail("fifo", "read %ld bytes, expected %ld", (long)got, FIFO_BYTES);
        }
        for (size_t i = 0; i < FIFO_BYTES && ok; i++) {
          if (buf[i] != byte_at(4, i)) ok = fail("fifo", "byte %ld differs%ld", (long)i, 0);
        }
        if (ok && write(fifo_fd, buf, FIFO_BYTES) != FIFO_BYTES) die("write fifo");
      }
      if (ok && want_unix) {
        uint8_t buf[UNIX_BYTES + 1];
        size_t got;
        if (!read_exact_nonblock(us[1], buf, UNIX_BYTES, &got) || got != UNIX_BYTES) {
          ok = fail("unix", "stream read %ld bytes, expected %ld", (long)got, UNIX_BYTES);
        }
        for (size_t i = 0; i < UNIX_BYTES && ok; i++) {
          if (buf[i] != byte_at(5, i)) ok = fail("unix", "stream byte %ld differs%ld", (long)i, 0);
        }
        if (ok && write(us[0], buf, UNIX_BYTES) != UNIX_BYTES) die("write unix");
        for (int m = 0; m < 3 && ok; m++) {
          uint8_t msg[101];
          ssize_t n = recv(ud[1], msg, sizeof msg, 0);
          if (n != 100) ok = fail("unix", "datagram %ld has %ld bytes", m, (long)n);
          for (size_t i = 0; i < 100 && ok; i++) {
            if (msg[i] != byte_at(6 + m, i)) ok = fail("unix", "datagram %ld byte %ld", m, (long)i);
          }
          if (ok && send(ud[0], msg, 100, 0) != 100) die("send unix");
        }
      }
      for (long t = 0; t < nthreads && ok; t++) {
        workers[t].asked = round;
        for (int i = 0; i < 2000 && workers[t].answered != round; i++) sleep_ms(1);
        if (workers[t].answered != round) ok = fail("threads", "thread %ld never answered%ld", t, 0);
        else if (workers[t].failed == round) ok = fail("threads", "thread %ld memory differs%ld", t, 0);
      }
      if (!ok) {
        printf("verify FAIL %s\n", failure);
        return 3;
      }
      printf("verify ok%s\n", parts);
    }
    counter++;
    printf("tick %llu pid %d ok\n", (unsigned long long)counter, getpid());
    sleep_ms(interval_ms);
  }
}
