/*
 * Lodestone's link-layer transport: AF_PACKET raw sockets for Node, through the plain N-API C interface (stable
 * ABI: one build runs on every Node >= 12.22 with N-API 8). Deliberately minimal: open a socket bound to one
 * interface with a classic BPF filter, send a frame, receive frames (a non-blocking fd watched by libuv's
 * uv_poll, so frames reach JavaScript in the same loop turn they arrive, with no thread), join link-layer
 * multicast groups, read kernel drop statistics, close. Errors are thrown as Error objects whose `code` is the
 * errno name ("EPERM", "ENODEV", ...) so the TypeScript wrapper can map them to Lodestone error codes.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FRAME 65536
/* Frames handed to JavaScript per readiness event, so one busy socket cannot starve the event loop. */
#define MAX_BATCH 256
#define RCVBUF_BYTES (4 * 1024 * 1024)

typedef struct psock {
  int fd;
  int ifindex;
  int polling;
  int poll_initialised;
  int handle_open;   /* uv handle not yet closed by libuv */
  int external_gone; /* JS object finalised */
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context async;
} psock;

/* Per thread: the speaker reads frames on its wire thread, `lodestone announce` on the main thread. */
static _Thread_local unsigned char frame_buf[MAX_FRAME];

static const char *errno_code(int err) {
  switch (err) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENODEV: return "ENODEV";
    case ENXIO: return "ENXIO";
    case ENETDOWN: return "ENETDOWN";
    case EAGAIN: return "EAGAIN";
    case ENOBUFS: return "ENOBUFS";
    case EINVAL: return "EINVAL";
    case EMSGSIZE: return "EMSGSIZE";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EBADF: return "EBADF";
    case EMFILE: return "EMFILE";
    default: return "EIO";
  }
}

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, errno_code(err), msg);
  return NULL;
}

#define CHECK(call)                                                  \
  do {                                                               \
    if ((call) != napi_ok) {                                         \
      napi_throw_error(env, "EINVAL", "packet_socket: " #call);      \
      return NULL;                                                   \
    }                                                                \
  } while (0)

static void maybe_free(psock *s) {
  if (s->external_gone && !s->handle_open) {
    free(s);
  }
}

static void on_handle_closed(uv_handle_t *handle) {
  psock *s = (psock *)handle->data;
  s->handle_open = 0;
  maybe_free(s);
}

static void close_socket(napi_env env, psock *s) {
  if (s->fd < 0) return;
  if (s->poll_initialised) {
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_handle_closed);
    s->poll_initialised = 0;
  }
  s->polling = 0;
  close(s->fd);
  s->fd = -1;
  if (s->callback != NULL) {
    napi_delete_reference(env, s->callback);
    s->callback = NULL;
  }
  if (s->async != NULL) {
    napi_async_destroy(env, s->async);
    s->async = NULL;
  }
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  psock *s = (psock *)data;
  close_socket(env, s);
  s->external_gone = 1;
  maybe_free(s);
}

static psock *unwrap(napi_env env, napi_value v) {
  psock *s = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, (void **)&s) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "expected a packet socket handle");
    return NULL;
  }
  if (s->fd < 0) {
    napi_throw_error(env, "EBADF", "packet socket is closed");
    return NULL;
  }
  return s;
}

static int attach_filter(int fd, const unsigned char *code, size_t len) {
  struct sock_fprog prog;
  prog.len = (unsigned short)(len / sizeof(struct sock_filter));
  prog.filter = (struct sock_filter *)code;
  return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog);
}

static int get_filter_arg(napi_env env, napi_value v, unsigned char **data, size_t *len) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_null || t == napi_undefined) {
    *data = NULL;
    *len = 0;
    return 0;
  }
  bool is_buffer = false;
  napi_is_buffer(env, v, &is_buffer);
  if (!is_buffer || napi_get_buffer_info(env, v, (void **)data, len) != napi_ok || *len == 0 ||
      *len % sizeof(struct sock_filter) != 0 || *len / sizeof(struct sock_filter) > 4096) {
    napi_throw_type_error(env, "EINVAL", "filter must be a Buffer of 8-byte struct sock_filter instructions");
    return -1;
  }
  return 0;
}

/* open(ifindex, protocol, filter | null) -> handle. The socket is created with protocol 0 (it receives nothing),
 * the filter attached, and only then bound to the interface and protocol, so no unfiltered frame is ever queued. */
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t ifindex = 0, protocol = 0;
  CHECK(napi_get_value_int32(env, argv[0], &ifindex));
  CHECK(napi_get_value_int32(env, argv[1], &protocol));
  unsigned char *filter = NULL;
  size_t filter_len = 0;
  if (argc > 2 && get_filter_arg(env, argv[2], &filter, &filter_len) != 0) return NULL;

  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket(AF_PACKET, SOCK_RAW)", errno);
  /* A deeper receive queue rides out event-loop pauses (GC, a busy node) under an ARP storm: the default
   * (~200 KB) holds only ~300 frames. FORCE needs CAP_NET_ADMIN; without it the kernel caps at rmem_max. */
  int rcvbuf = RCVBUF_BYTES;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  if (filter != NULL && attach_filter(fd, filter, filter_len) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "setsockopt(SO_ATTACH_FILTER)", err);
  }
  struct sockaddr_ll addr;
  memset(&addr, 0, sizeof addr);
  addr.sll_family = AF_PACKET;
  addr.sll_protocol = htons((uint16_t)protocol);
  addr.sll_ifindex = ifindex;
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "bind(AF_PACKET)", err);
  }
  psock *s = calloc(1, sizeof *s);
  if (s == NULL) {
    close(fd);
    return throw_errno(env, "calloc", ENOMEM);
  }
  s->fd = fd;
  s->ifindex = ifindex;
  s->env = env;
  napi_value handle;
  if (napi_create_external(env, s, finalize, NULL, &handle) != napi_ok) {
    close(fd);
    free(s);
    napi_throw_error(env, "EIO", "napi_create_external failed");
    return NULL;
  }
  return handle;
}

static napi_value js_set_filter(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  psock *s = unwrap(env, argv[0]);
  if (s == NULL) return NULL;
  unsigned char *filter = NULL;
  size_t len = 0;
  if (get_filter_arg(env, argv[1], &filter, &len) != 0) return NULL;
  if (filter == NULL) {
    int dummy = 0;
    setsockopt(s->fd, SOL_SOCKET, SO_DETACH_FILTER, &dummy, sizeof dummy);
  } else if (attach_filter(s->fd, filter, len) != 0) {
    return throw_errno(env, "setsockopt(SO_ATTACH_FILTER)", errno);
  }
  return NULL;
}

/* send(handle, frame) -> bytes sent. A complete Ethernet frame; the kernel adds nothing but the FCS. */
static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  psock *s = unwrap(env, argv[0]);
  if (s == NULL) return NULL;
  void *data = NULL;
  size_t len = 0;
  bool is_typed = false;
  napi_is_typedarray(env, argv[1], &is_typed);
  if (!is_typed) {
    napi_throw_type_error(env, "EINVAL", "frame must be a Uint8Array");
    return NULL;
  }
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  CHECK(napi_get_typedarray_info(env, argv[1], &type, &len, &data, &ab, &offset));
  if (type != napi_uint8_array) {
    napi_throw_type_error(env, "EINVAL", "frame must be a Uint8Array");
    return NULL;
  }
  ssize_t n = send(s->fd, data, len, MSG_DONTWAIT);
  if (n < 0) return throw_errno(env, "send(AF_PACKET)", errno);
  napi_value result;
  CHECK(napi_create_int32(env, (int32_t)n, &result));
  return result;
}

static void raise_pending(napi_env env) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  psock *s = (psock *)handle->data;
  (void)events;
  if (s->fd < 0 || s->callback == NULL) return;
  napi_env env = s->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value callback, resource, argv[2];
  napi_get_reference_value(env, s->callback, &callback);
  napi_get_global(env, &resource);
  if (status < 0) {
    napi_value msg;
    napi_create_string_utf8(env, uv_strerror(status), NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &argv[0]);
    napi_get_undefined(env, &argv[1]);
    napi_make_callback(env, s->async, resource, callback, 2, argv, NULL);
    raise_pending(env);
    napi_close_handle_scope(env, scope);
    return;
  }
  for (int i = 0; i < MAX_BATCH && s->fd >= 0 && s->callback != NULL; i++) {
    struct sockaddr_ll from;
    socklen_t fromlen = sizeof from;
    ssize_t n = recvfrom(s->fd, frame_buf, sizeof frame_buf, MSG_DONTWAIT, (struct sockaddr *)&from, &fromlen);
    if (n < 0) break; /* EAGAIN: drained (other errors resurface as poll status) */
    /* Our own transmissions are looped back to packet sockets as PACKET_OUTGOING: never input. */
    if (from.sll_pkttype == PACKET_OUTGOING) continue;
    napi_handle_scope inner;
    napi_open_handle_scope(env, &inner);
    void *copy;
    napi_get_null(env, &argv[0]);
    napi_create_buffer_copy(env, (size_t)n, frame_buf, &copy, &argv[1]);
    napi_make_callback(env, s->async, resource, callback, 2, argv, NULL);
    raise_pending(env);
    napi_close_handle_scope(env, inner);
  }
  napi_close_handle_scope(env, scope);
}

/* start(handle, callback(err, frame)): deliver received frames until stop() or close(). */
static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  psock *s = unwrap(env, argv[0]);
  if (s == NULL) return NULL;
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  if (t != napi_function) {
    napi_throw_type_error(env, "EINVAL", "callback must be a function");
    return NULL;
  }
  if (s->callback != NULL) napi_delete_reference(env, s->callback);
  CHECK(napi_create_reference(env, argv[1], 1, &s->callback));
  if (s->async == NULL) {
    napi_value name;
    CHECK(napi_create_string_utf8(env, "lodestone:packet-socket", NAPI_AUTO_LENGTH, &name));
    CHECK(napi_async_init(env, NULL, name, &s->async));
  }
  if (!s->poll_initialised) {
    uv_loop_t *loop;
    CHECK(napi_get_uv_event_loop(env, &loop));
    int rc = uv_poll_init(loop, &s->poll, s->fd);
    if (rc != 0) return throw_errno(env, "uv_poll_init", -rc);
    s->poll.data = s;
    s->poll_initialised = 1;
    s->handle_open = 1;
  }
  int rc = uv_poll_start(&s->poll, UV_READABLE, on_readable);
  if (rc != 0) return throw_errno(env, "uv_poll_start", -rc);
  s->polling = 1;
  return NULL;
}

static napi_value js_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  psock *s = unwrap(env, argv[0]);
  if (s == NULL) return NULL;
  if (s->poll_initialised) uv_poll_stop(&s->poll);
  s->polling = 0;
  return NULL;
}

/* membership(handle, add, type, mac | null): PACKET_ADD/DROP_MEMBERSHIP; type is PACKET_MR_MULTICAST (0),
 * PACKET_MR_PROMISC (1) or PACKET_MR_ALLMULTI (2). The kernel reference-counts these per socket. */
static napi_value js_membership(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  psock *s = unwrap(env, argv[0]);
  if (s == NULL) return NULL;
  bool add = false;
  int32_t type = 0;
  CHECK(napi_get_value_bool(env, argv[1], &add));
  CHECK(napi_get_value_int32(env, argv[2], &type));
  struct packet_mreq mreq;
  memset(&mreq, 0, sizeof mreq);
  mreq.mr_ifindex = s->ifindex;
  mreq.mr_type = (unsigned short)type;
  napi_valuetype t;
  napi_typeof(env, argv[3], &t);
  if (t != napi_null && t != napi_undefined) {
    void *mac;
    size_t len;
    CHECK(napi_get_buffer_info(env, argv[3], &mac, &len));
    if (len != 6) {
      napi_throw_type_error(env, "EINVAL", "mac must be 6 bytes");
      return NULL;
    }
    mreq.mr_alen = 6;
    memcpy(mreq.mr_address, mac, 6);
  }
  if (setsockopt(s->fd, SOL_PACKET, add ? PACKET_ADD_MEMBERSHIP : PACKET_DROP_MEMBERSHIP, &mreq, sizeof mreq) != 0) {
    return throw_errno(env, add ? "setsockopt(PACKET_ADD_MEMBERSHIP)" : "setsockopt(PACKET_DROP_MEMBERSHIP)", errno);
  }
  return NULL;
}

/* stats(handle) -> {packets, drops} since the previous call (the kernel resets them on read). */
static napi_value js_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  psock *s = unwrap(env, argv[0]);
  if (s == NULL) return NULL;
  struct tpacket_stats st;
  socklen_t len = sizeof st;
  if (getsockopt(s->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) != 0) {
    return throw_errno(env, "getsockopt(PACKET_STATISTICS)", errno);
  }
  napi_value result, packets, drops;
  CHECK(napi_create_object(env, &result));
  CHECK(napi_create_uint32(env, st.tp_packets, &packets));
  CHECK(napi_create_uint32(env, st.tp_drops, &drops));
  CHECK(napi_set_named_property(env, result, "packets", packets));
  CHECK(napi_set_named_property(env, result, "drops", drops));
  return result;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  psock *s = NULL;
  if (napi_get_value_external(env, argv[0], (void **)&s) != napi_ok || s == NULL) {
    napi_throw_type_error(env, "EINVAL", "expected a packet socket handle");
    return NULL;
  }
  close_socket(env, s);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setFilter", NULL, js_set_filter, NULL, NULL, NULL, napi_enumerable, NULL},
      {"send", NULL, js_send, NULL, NULL, NULL, napi_enumerable, NULL},
      {"start", NULL, js_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stop", NULL, js_stop, NULL, NULL, NULL, napi_enumerable, NULL},
      {"membership", NULL, js_membership, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stats", NULL, js_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
