// The kernel's view of a Unix socket's peer, for the Workload API: who connected (SO_PEERCRED) and a
// handle on that exact process (a pidfd) so a recycled PID can never be mistaken for the caller.
// Node-API only (no V8 or libuv headers), so one build works across Node versions.

#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <node_api.h>

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

static const char *errno_name(int err) {
  switch (err) {
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case ENOTCONN: return "ENOTCONN";
    case ENOTSOCK: return "ENOTSOCK";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case ESRCH: return "ESRCH";
    case EPERM: return "EPERM";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOMEM: return "ENOMEM";
    case ENOSYS: return "ENOSYS";
    case ENOENT: return "ENOENT";
    default: return "EUNKNOWN";
  }
}

// Throws an Error shaped like node's system errors: code, errno (negative), syscall.
static napi_value throw_errno(napi_env env, int err, const char *syscall) {
  char message[160];
  snprintf(message, sizeof message, "%s failed: %s", syscall, strerror(err));
  napi_value code, msg, call, error, errnum;
  napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &call);
  napi_create_error(env, code, msg, &error);
  napi_create_int32(env, -err, &errnum);
  napi_set_named_property(env, error, "errno", errnum);
  napi_set_named_property(env, error, "syscall", call);
  napi_throw(env, error);
  return NULL;
}

static int int_arg(napi_env env, napi_callback_info info, int32_t *out) {
  size_t argc = 1;
  napi_value argv[1];
  napi_valuetype type;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_typeof(env, argv[0], &type) != napi_ok || type != napi_number ||
      napi_get_value_int32(env, argv[0], out) != napi_ok || *out < 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a non-negative integer");
    return 0;
  }
  return 1;
}

static napi_value set_int(napi_env env, napi_value obj, const char *name, int64_t value) {
  napi_value v;
  napi_create_int64(env, value, &v);
  napi_set_named_property(env, obj, name, v);
  return obj;
}

// peerCred(fd) -> { pid, uid, gid } of the process that connected (as of connect(2)).
static napi_value peer_cred(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!int_arg(env, info, &fd)) return NULL;
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return throw_errno(env, errno, "getsockopt(SO_PEERCRED)");
  // A peer in another PID namespace that the kernel cannot map shows up as pid 0.
  if (cred.pid <= 0) return throw_errno(env, ESRCH, "getsockopt(SO_PEERCRED)");
  napi_value result;
  napi_create_object(env, &result);
  set_int(env, result, "pid", cred.pid);
  set_int(env, result, "uid", cred.uid);
  set_int(env, result, "gid", cred.gid);
  return result;
}

// peerPidfd(fd) -> a pidfd for the process that connected, taken by the kernel at connect(2) time
// (Linux 6.5+), or null where the kernel has no SO_PEERPIDFD.
static napi_value peer_pidfd(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!int_arg(env, info, &fd)) return NULL;
  int pidfd = -1;
  socklen_t len = sizeof pidfd;
  napi_value result;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) != 0) {
    if (errno == ENOPROTOOPT || errno == EINVAL) {
      napi_get_null(env, &result);
      return result;
    }
    return throw_errno(env, errno, "getsockopt(SO_PEERPIDFD)");
  }
  napi_create_int32(env, pidfd, &result);
  return result;
}

// pidfdOpen(pid) -> a pidfd (close-on-exec) for a live process.
static napi_value pidfd_open(napi_env env, napi_callback_info info) {
  int32_t pid;
  if (!int_arg(env, info, &pid)) return NULL;
  long pidfd = syscall(SYS_pidfd_open, (pid_t)pid, 0);
  if (pidfd < 0) return throw_errno(env, errno, "pidfd_open");
  napi_value result;
  napi_create_int32(env, (int32_t)pidfd, &result);
  return result;
}

// pidfdAlive(pidfd) -> false once the process has exited (a pidfd polls readable at exit, zombie or not).
static napi_value pidfd_alive(napi_env env, napi_callback_info info) {
  int32_t pidfd;
  if (!int_arg(env, info, &pidfd)) return NULL;
  struct pollfd p = { .fd = pidfd, .events = POLLIN };
  int n;
  do n = poll(&p, 1, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, errno, "poll(pidfd)");
  if (n > 0 && (p.revents & POLLNVAL)) return throw_errno(env, EBADF, "poll(pidfd)");
  napi_value result;
  napi_get_boolean(env, n == 0, &result);
  return result;
}

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

// originalDst(fd) -> { address, port, family } that a connection redirected by iptables REDIRECT was
// first addressed to (SO_ORIGINAL_DST from conntrack), or null when it was not redirected.
static napi_value original_dst(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!int_arg(env, info, &fd)) return NULL;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char text[INET6_ADDRSTRLEN];
  napi_value result, address;
  memset(&ss, 0, sizeof ss);
  if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &ss, &len) != 0) {
    len = sizeof ss;
    if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &ss, &len) != 0) {
      if (errno == ENOENT || errno == ENOPROTOOPT || errno == EINVAL) {
        napi_get_null(env, &result);
        return result;
      }
      return throw_errno(env, errno, "getsockopt(SO_ORIGINAL_DST)");
    }
  }
  napi_create_object(env, &result);
  if (ss.ss_family == AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    set_int(env, result, "port", ntohs(in->sin_port));
    set_int(env, result, "family", 4);
  } else if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    set_int(env, result, "port", ntohs(in6->sin6_port));
    set_int(env, result, "family", 6);
  } else {
    napi_get_null(env, &result);
    return result;
  }
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &address);
  napi_set_named_property(env, result, "address", address);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "peerCred", NULL, peer_cred, NULL, NULL, NULL, napi_enumerable, NULL },
    { "peerPidfd", NULL, peer_pidfd, NULL, NULL, NULL, napi_enumerable, NULL },
    { "pidfdOpen", NULL, pidfd_open, NULL, NULL, NULL, napi_enumerable, NULL },
    { "pidfdAlive", NULL, pidfd_alive, NULL, NULL, NULL, napi_enumerable, NULL },
    { "originalDst", NULL, original_dst, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
