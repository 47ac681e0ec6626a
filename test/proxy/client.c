// A tiny TCP client for the proxy tests: copies stdin to the socket and the socket to stdout, and exits
// when the server closes. Its executable is the code-DNA under test: the tests copy it and change one
// byte of the marker below, which changes its sha256 and nothing else.
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

const char marker[] = "SIGIL-CODE-DNA-MARKER-0";

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--marker") == 0) {
    puts(marker);
    return 0;
  }
  if (argc != 3) {
    fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
    return 2;
  }
  struct addrinfo hints = {0}, *res;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(argv[1], argv[2], &hints, &res) != 0) return 3;
  int fd = socket(res->ai_family, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    perror("connect");
    return 4;
  }
  struct pollfd p[2] = {{.fd = 0, .events = POLLIN}, {.fd = fd, .events = POLLIN}};
  char buf[65536];
  int stdin_open = 1;
  for (;;) {
    if (poll(p, 2, -1) < 0) return 5;
    if (stdin_open && (p[0].revents & (POLLIN | POLLHUP))) {
      ssize_t n = read(0, buf, sizeof buf);
      if (n <= 0) {
        stdin_open = 0;
        p[0].fd = -1;
        shutdown(fd, SHUT_WR);
      } else if (write(fd, buf, n) != n) return 6;
    }
    if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = read(fd, buf, sizeof buf);
      if (n <= 0) break;
      if (write(1, buf, n) != n) return 7;
    }
  }
  return 0;
}
