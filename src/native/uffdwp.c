/*
 * u2cm uffd-wp tracker: exact written-page bits without soft-dirty (Linux >= 6.7).
 *
 *  - u2cm_uffdwp_open(pid): create a userfaultfd in the TARGET's address space by ptrace syscall
 *    injection (x86_64: a `syscall` instruction found in the target's [vdso]), take our own
 *    descriptor of it with pidfd_getfd, close the target's descriptor (CRIU cannot dump one), restore
 *    the target's registers exactly and detach; then UFFDIO_API with UFFD_FEATURE_WP_ASYNC (no fault
 *    is ever delivered: a write just clears the page's write-protect bit). The ptrace work runs in a
 *    forked helper process, so the tracee's stops are never seen by this process's child reaper.
 *  - u2cm_uffdwp_register(uffd, start, len): UFFDIO_REGISTER mode WP over one mapping (the ioctl acts
 *    on the uffd's mm: the target's).
 *  - u2cm_uffdwp_scan(pagemap, start, npages, rearm, out): PAGEMAP_SCAN for PAGE_IS_WRITTEN pages;
 *    with `rearm`, PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC write-protects them again in the
 *    same walk (atomically, under the page-table lock).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <sys/ptrace.h>
#include <sys/user.h>
#endif

/* include/uapi/linux/userfaultfd.h */
#define UW_UFFDIO 0xAA
#define UW_UFFD_API 0xAAULL
#define UW_FEATURE_WP_HUGETLBFS_SHMEM (1ULL << 12)
#define UW_FEATURE_WP_UNPOPULATED (1ULL << 13)
#define UW_FEATURE_WP_ASYNC (1ULL << 15)
#define UW_REGISTER_MODE_WP ((uint64_t)1 << 1)
#define UW_USER_MODE_ONLY 1
struct uw_uffdio_api {
  uint64_t api;
  uint64_t features;
  uint64_t ioctls;
};
struct uw_uffdio_range {
  uint64_t start;
  uint64_t len;
};
struct uw_uffdio_register {
  struct uw_uffdio_range range;
  uint64_t mode;
  uint64_t ioctls;
};
#define UW_UFFDIO_API _IOWR(UW_UFFDIO, 0x3F, struct uw_uffdio_api)
#define UW_UFFDIO_REGISTER _IOWR(UW_UFFDIO, 0x00, struct uw_uffdio_register)

/* include/uapi/linux/fs.h: PAGEMAP_SCAN */
#define UW_PAGE_IS_WRITTEN (1ULL << 1)
#define UW_PM_SCAN_WP_MATCHING (1ULL << 0)
#define UW_PM_SCAN_CHECK_WPASYNC (1ULL << 1)
struct uw_page_region {
  uint64_t start;
  uint64_t end;
  uint64_t categories;
};
struct uw_pm_scan_arg {
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
#define UW_PAGEMAP_SCAN _IOWR('f', 16, struct uw_pm_scan_arg)
#define UW_PAGE 4096ull

/* ---------------------------------------------------------------------------------------------- */
/* Syscall injection (x86_64)                                                                     */

#if defined(__x86_64__)

/* Wait for a ptrace stop of `pid`; returns the stop signal, or -errno / -ESRCH when it exited. */
static int uw_wait_stop(pid_t pid, int *status) {
  for (;;) {
    pid_t r = waitpid(pid, status, __WALL);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (WIFEXITED(*status) || WIFSIGNALED(*status)) return -ESRCH;
    if (WIFSTOPPED(*status)) return WSTOPSIG(*status);
  }
}

/* The address of a `syscall` instruction (0f 05) in the target's [vdso], or 0. */
static uint64_t uw_find_syscall_insn(pid_t pid) {
  char path[64], buf[8192];
  uint64_t lo = 0, hi = 0;
  snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  /* Read the whole maps text in pieces and look for the line ending in [vdso]. */
  char line[512];
  size_t ll = 0;
  ssize_t n;
  while (!lo && (n = read(fd, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n && !lo; i++) {
      char c = buf[i];
      if (c != '\n') {
        if (ll < sizeof line - 1) line[ll++] = c;
        continue;
      }
      line[ll] = 0;
      ll = 0;
      size_t len = strlen(line);
      if (len >= 6 && strcmp(line + len - 6, "[vdso]") == 0) {
        unsigned long a, b;
        if (sscanf(line, "%lx-%lx", &a, &b) == 2) {
          lo = a;
          hi = b;
        }
      }
    }
  }
  close(fd);
  if (!lo || hi - lo > sizeof buf) return 0;
  snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  n = pread(fd, buf, hi - lo, (off_t)lo);
  close(fd);
  for (ssize_t i = 0; i + 1 < n; i++)
    if ((uint8_t)buf[i] == 0x0f && (uint8_t)buf[i + 1] == 0x05) return lo + (uint64_t)i;
  return 0;
}

/*
 * Run one system call in the stopped tracee `pid` at `insn` with registers derived from `saved`;
 * returns the call's result (-errno for a failing call) in *result, or a negative errno of the
 * injection itself. Signals arriving meanwhile are remembered in *pending_sig for the detach.
 */
static int uw_inject(pid_t pid, const struct user_regs_struct *saved, uint64_t insn, long nr, long a1,
                     long a2, long *result, int *pending_sig) {
  struct user_regs_struct regs = *saved;
  regs.rip = insn;
  regs.rax = (unsigned long)nr;
  regs.orig_rax = (unsigned long)-1; /* no syscall-restart fix-up of the injected registers */
  regs.rdi = (unsigned long)a1;
  regs.rsi = (unsigned long)a2;
  if (ptrace(PTRACE_SETREGS, pid, 0, &regs) < 0) return -errno;
  for (int tries = 0; tries < 64; tries++) {
    if (ptrace(PTRACE_SINGLESTEP, pid, 0, 0) < 0) return -errno;
    int status;
    int sig = uw_wait_stop(pid, &status);
    if (sig < 0) return sig;
    if (ptrace(PTRACE_GETREGS, pid, 0, &regs) < 0) return -errno;
    if (sig == SIGTRAP && regs.rip == insn + 2) {
      *result = (long)regs.rax;
      return 0;
    }
    if (sig != SIGTRAP && (status >> 16) == 0) *pending_sig = sig; /* deliver after detach */
    if (regs.rip != insn) return -EIO; /* moved without executing our instruction */
  }
  return -EIO;
}

/* The helper process: inject userfaultfd, report its fd number, wait, inject close, detach. */
static int uw_helper(pid_t pid, int report_fd, int go_fd) {
  int32_t msg[2] = {0, 0};
  if (ptrace(PTRACE_SEIZE, pid, 0, 0) < 0) return errno;
  int pending = 0, status;
  if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) < 0) return errno;
  for (;;) {
    int sig = uw_wait_stop(pid, &status);
    if (sig < 0) return -sig;
    if (sig == SIGTRAP && (status >> 16) == PTRACE_EVENT_STOP) break;
    if ((status >> 16) == PTRACE_EVENT_STOP) break; /* group-stop while seized */
    /* A signal-delivery stop came first: keep the signal for the detach, wait for the interrupt. */
    pending = sig;
    if (ptrace(PTRACE_CONT, pid, 0, 0) < 0) return errno;
  }
  struct user_regs_struct saved;
  if (ptrace(PTRACE_GETREGS, pid, 0, &saved) < 0) return errno;
  int err = 0;
  uint64_t insn = uw_find_syscall_insn(pid);
  long fd = -1;
  if (!insn) err = ENOEXEC;
  if (!err) {
    int e = uw_inject(pid, &saved, insn, SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UW_USER_MODE_ONLY,
                      0, &fd, &pending);
    if (e < 0) err = -e;
    else if (fd < 0) err = (int)-fd;
  }
  msg[0] = err ? -1 : (int32_t)fd;
  msg[1] = err;
  if (write(report_fd, msg, sizeof msg) != (ssize_t)sizeof msg && !err) err = EPIPE;
  if (fd >= 0) {
    char go;
    while (read(go_fd, &go, 1) < 0 && errno == EINTR) {
    }
    long r = 0;
    int e = uw_inject(pid, &saved, insn, SYS_close, fd, 0, &r, &pending);
    if (e < 0 && !err) err = -e;
  }
  if (ptrace(PTRACE_SETREGS, pid, 0, &saved) < 0 && !err) err = errno;
  if (ptrace(PTRACE_DETACH, pid, 0, (void *)(long)pending) < 0 && !err) err = errno;
  return err;
}

static int64_t uw_open_in(int32_t pid) {
  int report[2], go[2];
  if (pipe2(report, O_CLOEXEC) < 0) return -errno;
  if (pipe2(go, O_CLOEXEC) < 0) {
    int e = errno;
    close(report[0]);
    close(report[1]);
    return -e;
  }
  pid_t child = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0); /* fork without atfork handlers */
  if (child < 0) {
    int e = errno;
    close(report[0]), close(report[1]), close(go[0]), close(go[1]);
    return -e;
  }
  if (child == 0) {
    close(report[0]);
    close(go[1]);
    int err = uw_helper(pid, report[1], go[0]);
    syscall(SYS_exit_group, err > 255 ? 255 : err);
  }
  close(report[1]);
  close(go[0]);
  int32_t msg[2] = {-1, EIO};
  ssize_t n;
  while ((n = read(report[0], msg, sizeof msg)) < 0 && errno == EINTR) {
  }
  int64_t result;
  if (n != (ssize_t)sizeof msg) result = -EIO;
  else if (msg[0] < 0) result = -(int64_t)msg[1];
  else {
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    int ours = pidfd < 0 ? -1 : (int)syscall(SYS_pidfd_getfd, pidfd, msg[0], 0);
    result = ours >= 0 ? ours : -errno;
    if (pidfd >= 0) close(pidfd);
  }
  char byte = 1;
  if (write(go[1], &byte, 1) < 0) {
  }
  close(go[1]);
  close(report[0]);
  int status = 0;
  while (waitpid(child, &status, __WALL) < 0 && errno == EINTR) {
  }
  int helper_err = WIFEXITED(status) ? WEXITSTATUS(status) : EIO;
  if (helper_err && result >= 0) {
    close((int)result);
    result = -helper_err;
  }
  return result;
}
#endif

/*
 * Create a write-protect-async userfaultfd in the address space of `pid` and return this process's
 * descriptor of it, or -errno (ENOSYS: not x86_64; EPERM: ptrace refused; EINVAL: the kernel lacks
 * UFFD_FEATURE_WP_ASYNC; ENOEXEC: no [vdso] to run a syscall from).
 */
int64_t u2cm_uffdwp_open(int32_t pid) {
#if defined(__x86_64__)
  int64_t fd = uw_open_in(pid);
  if (fd < 0) return fd;
  struct uw_uffdio_api api = {UW_UFFD_API,
                              UW_FEATURE_WP_ASYNC | UW_FEATURE_WP_UNPOPULATED |
                                  UW_FEATURE_WP_HUGETLBFS_SHMEM,
                              0};
  if (ioctl((int)fd, UW_UFFDIO_API, &api) < 0) {
    int e = errno;
    close((int)fd);
    return -e;
  }
  return fd;
#else
  (void)pid;
  return -ENOSYS;
#endif
}

/* Register [start, start+len) of the uffd's address space for write-protect tracking; 0 or -errno. */
int32_t u2cm_uffdwp_register(int32_t uffd, uint64_t start, uint64_t len) {
  struct uw_uffdio_register reg = {{start, len}, UW_REGISTER_MODE_WP, 0};
  return ioctl(uffd, UW_UFFDIO_REGISTER, &reg) == 0 ? 0 : -errno;
}

/*
 * Written pages of [start, start + npages pages) as sorted page indices into out (room for npages);
 * with `rearm`, write-protect them again in the same walk. Returns the count or -errno.
 */
int64_t u2cm_uffdwp_scan(int32_t pagemap_fd, uint64_t start, uint32_t npages, int32_t rearm,
                         uint32_t *out) {
  struct uw_page_region regions[256];
  uint64_t end = start + (uint64_t)npages * UW_PAGE, at = start;
  int64_t count = 0;
  while (at < end) {
    struct uw_pm_scan_arg arg;
    memset(&arg, 0, sizeof arg);
    arg.size = sizeof arg;
    arg.flags = rearm ? (UW_PM_SCAN_WP_MATCHING | UW_PM_SCAN_CHECK_WPASYNC) : 0;
    arg.start = at;
    arg.end = end;
    arg.vec = (uint64_t)(uintptr_t)regions;
    arg.vec_len = sizeof regions / sizeof regions[0];
    arg.category_mask = UW_PAGE_IS_WRITTEN;
    arg.return_mask = UW_PAGE_IS_WRITTEN;
    int n = ioctl(pagemap_fd, UW_PAGEMAP_SCAN, &arg);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    for (int i = 0; i < n; i++)
      for (uint64_t a = regions[i].start; a < regions[i].end && count < npages; a += UW_PAGE)
        out[count++] = (uint32_t)((a - start) / UW_PAGE);
    if (arg.walk_end <= at) break;
    at = arg.walk_end;
  }
  return count;
}
