/*
 * u2cm tree guard: runs one command (u2cm runs `criu restore` under it) so that nothing that
 * command creates outlives a failure of u2cm.
 *
 *   u2cm-tree-guard PARENT_PID PROGRAM [ARG...]
 *
 * The guard is a child subreaper (PR_SET_CHILD_SUBREAPER): every process the command forks that
 * loses its parent (the tree CRIU restores, when CRIU dies) becomes the guard's child instead of
 * init's. It asks for SIGTERM when its parent dies (PR_SET_PDEATHSIG) and the command gets SIGKILL
 * when the guard dies. Then:
 *
 * - the command exits 0 and PARENT_PID is still the guard's parent: the guard exits 0 at once and
 *   leaves what the command made (a restored tree, left stopped) to its parent's decision;
 * - the command fails or is killed, the parent dies, or the guard gets SIGTERM/SIGINT/SIGHUP: the
 *   guard SIGKILLs every process descending from it (the command first of all, in the same pass
 *   as the tasks it was restoring, so none of them runs again) until none is left, then exits with
 *   the command's status (128 + signal when killed, 124 when the parent died first, 125 on bad
 *   usage, 126 when the command could not be started).
 *
 * Every loop is bounded (kill passes, processes read from /proc).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GUARD_EXIT_PARENT_GONE 124
#define GUARD_EXIT_USAGE 125
#define GUARD_EXIT_EXEC 126
#define MAX_PROCS 65536
#define MAX_KILL_PASSES 1000

struct proc_link {
  pid_t pid;
  pid_t ppid;
  char state;
};

static struct proc_link procs[MAX_PROCS];

/* Read pid, parent and state of every process from /proc; returns how many were read. */
static int read_procs(void) {
  DIR *dir = opendir("/proc");
  if (!dir) return 0;
  int n = 0;
  struct dirent *e;
  while (n < MAX_PROCS && (e = readdir(dir)) != NULL) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    char path[300], buf[512];
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    FILE *f = fopen(path, "re");
    if (!f) continue;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = 0;
    char *close = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    char state;
    int ppid;
    if (!close || sscanf(close + 1, " %c %d", &state, &ppid) != 2) continue;
    procs[n].pid = (pid_t)atoi(e->d_name);
    procs[n].ppid = (pid_t)ppid;
    procs[n].state = state;
    n++;
  }
  closedir(dir);
  return n;
}

/* Host pids seen as descendants in the current pass, one bit each (pid_max is at most 2^22). */
#define PID_LIMIT (1 << 22)
static unsigned char desc_bits[PID_LIMIT / 8];

static int is_desc(pid_t pid) {
  return pid > 0 && pid < PID_LIMIT && (desc_bits[pid >> 3] & (1 << (pid & 7)));
}

/*
 * Mark the descendants of `root` among the first `n` entries (ppid set to -1 for descendants, to
 * 0 for the others); returns how many live (not zombie) descendants there are.
 */
static int mark_descendants(pid_t root, int n) {
  memset(desc_bits, 0, sizeof desc_bits);
  int grew = 1;
  for (int pass = 0; grew && pass <= n; pass++) { /* one pass per generation at most */
    grew = 0;
    for (int i = 0; i < n; i++) {
      pid_t pid = procs[i].pid;
      if (pid <= 0 || pid >= PID_LIMIT || is_desc(pid)) continue;
      if (procs[i].ppid == root || is_desc(procs[i].ppid)) {
        desc_bits[pid >> 3] |= (unsigned char)(1 << (pid & 7));
        grew = 1;
      }
    }
  }
  int live = 0;
  for (int i = 0; i < n; i++) {
    int mine = is_desc(procs[i].pid);
    procs[i].ppid = mine ? -1 : 0;
    if (mine && procs[i].state != 'Z') live++;
  }
  return live;
}

static void reap_all(pid_t child, int *child_status, int *child_done) {
  int status;
  pid_t p;
  while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
    if (p == child) *child_status = status, *child_done = 1;
  }
}

/* SIGKILL every live descendant, pass after pass, until none is left (bounded). */
static void kill_tree(pid_t child, int *child_status, int *child_done) {
  pid_t self = getpid();
  for (int pass = 0; pass < MAX_KILL_PASSES; pass++) {
    int n = read_procs();
    int live = mark_descendants(self, n);
    reap_all(child, child_status, child_done);
    if (live == 0) return;
    for (int i = 0; i < n; i++) {
      if (procs[i].ppid == -1 && procs[i].state != 'Z') kill(procs[i].pid, SIGKILL);
    }
    struct timespec pause = {0, 2000000}; /* 2 ms: let the killed exit and reparent */
    nanosleep(&pause, NULL);
    reap_all(child, child_status, child_done);
  }
  fprintf(stderr, "u2cm-tree-guard: descendants still alive after %d kill passes\n",
          MAX_KILL_PASSES);
}

static int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: u2cm-tree-guard PARENT_PID PROGRAM [ARG...]\n");
    return GUARD_EXIT_USAGE;
  }
  char *end;
  long parent = strtol(argv[1], &end, 10);
  if (*end != 0 || parent <= 1) {
    fprintf(stderr, "u2cm-tree-guard: bad parent pid '%s'\n", argv[1]);
    return GUARD_EXIT_USAGE;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigprocmask(SIG_BLOCK, &set, NULL);
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0 || prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) {
    perror("u2cm-tree-guard: prctl");
    return GUARD_EXIT_USAGE;
  }
  if (getppid() != (pid_t)parent) return GUARD_EXIT_PARENT_GONE; /* nothing started yet */
  pid_t self = getpid();
  pid_t child = fork();
  if (child < 0) {
    perror("u2cm-tree-guard: fork");
    return GUARD_EXIT_EXEC;
  }
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != self) _exit(GUARD_EXIT_EXEC);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    execvp(argv[2], argv + 2);
    fprintf(stderr, "u2cm-tree-guard: cannot run %s: %s\n", argv[2], strerror(errno));
    _exit(GUARD_EXIT_EXEC);
  }
  int child_status = 0, child_done = 0;
  for (;;) {
    siginfo_t info;
    int sig = sigwaitinfo(&set, &info);
    if (sig < 0) {
      if (errno == EINTR) continue;
      perror("u2cm-tree-guard: sigwaitinfo");
      kill_tree(child, &child_status, &child_done);
      return 1;
    }
    if (sig != SIGCHLD) {
      kill_tree(child, &child_status, &child_done);
      return 128 + sig;
    }
    reap_all(child, &child_status, &child_done);
    if (!child_done) continue; /* an orphan of the tree was reaped */
    int ok = WIFEXITED(child_status) && WEXITSTATUS(child_status) == 0;
    if (ok && getppid() == (pid_t)parent) return 0;
    kill_tree(child, &child_status, &child_done);
    return ok ? GUARD_EXIT_PARENT_GONE : exit_code_of(child_status);
  }
}
