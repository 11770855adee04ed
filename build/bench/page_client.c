/*
 * The daemon's side of a local page server session for build/bench/page_server.ts: connect to
 * 127.0.0.1:PORT, read pages BASE … (PAGES of them, of process PID) in requests of NR pages, one
 * at a time as CRIU's lazy-pages daemon's background fill asks (24-byte iovs: CRIU 4.1), then
 * CLOSE. Prints the microseconds of the reads, or exits 1 when the server cut the session.
 *
 * usage: page_client PORT NR PAGES BASE PID
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int recv_all(int fd, void *buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = recv(fd, (uint8_t *)buf + got, len - got, MSG_WAITALL);
    if (n <= 0) return -1;
    got += (size_t)n;
  }
  return 0;
}

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: page_client PORT NR PAGES BASE PID\n");
    return 2;
  }
  int port = atoi(argv[1]);
  uint32_t nr = (uint32_t)strtoul(argv[2], 0, 0);
  uint64_t pages = strtoull(argv[3], 0, 0), base = strtoull(argv[4], 0, 0);
  uint64_t pid = strtoull(argv[5], 0, 0);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return perror("connect"), 1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  uint8_t *buf = malloc((size_t)nr * 4096);
  uint8_t iov[24], head[24];
  double start = now_us();
  for (uint64_t i = 0; i + nr <= pages; i += nr) {
    uint32_t cmd = 7;
    uint64_t vaddr = base + i * 4096;
    memcpy(iov, &cmd, 4);
    memcpy(iov + 4, &nr, 4);
    memcpy(iov + 8, &vaddr, 8);
    memcpy(iov + 16, &pid, 8);
    if (send(fd, iov, 24, 0) != 24) return 1;
    if (recv_all(fd, head, 24) || recv_all(fd, buf, (size_t)nr * 4096)) return 1;
  }
  double us = now_us() - start;
  uint32_t close_cmd = 0x1023, status;
  memset(iov, 0, sizeof iov);
  memcpy(iov, &close_cmd, 4);
  if (send(fd, iov, 24, 0) != 24 || recv_all(fd, &status, 4)) return 1;
  close(fd);
  printf("%.1f\n", us);
  return status == 0 ? 0 : 1;
}
