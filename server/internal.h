/* Private declarations of the qnbd server, one section per source file.
 *
 * Threads: the libuv loop thread owns every struct conn and struct
 * server field unless a comment says otherwise; backend calls and option
 * processing run on the worker pool and touch only what the request or
 * the option job carries.
 */
#ifndef QNBD_SERVER_INTERNAL_H
#define QNBD_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <uv.h>

#include "backend.h"
#include "protocol.h"
#include "util/vector.h"

/* Payload limits (bytes). */
#define MAX_PAYLOAD             (32u * 1024 * 1024) /* advertised maximum */
#define MAX_SKIP_PAYLOAD        (64u * 1024 * 1024) /* discard at most this */
#define MAX_OPTION_LEN          (64u * 1024)        /* larger: ERR_TOO_BIG */
#define MAX_OPTION_SKIP         (16u * 1024 * 1024) /* larger: hang up */
#define MAX_STRING              4096                /* names, descriptions */
#define MAX_OPTIONS             1024 /* options in one handshake before we hang up */
#define CONN_MAX_INFLIGHT_BYTES (64u * 1024 * 1024)
#define CONN_MAX_INFLIGHT       256

/* ---- options.c: the command line; config.c: the exports file ---- */

/* One allowed-client rule (config.c): an IPv4/IPv6 network, or every
 * client of a Unix socket (family AF_UNIX). */
struct acl_rule {
  int family;
  unsigned char addr[16]; /* network byte order */
  unsigned prefix;        /* significant bits */
};
DEFINE_VECTOR(acl_vec, struct acl_rule)

struct export_config {
  const char *name;
  const char *description;
  const char *path;   /* file, or the size for the memory format */
  const char *format; /* NULL: probe */
  const char *plugin; /* nbdkit plugin name or path (then path unused) */
  int plugin_argc;
  char **plugin_argv;
  bool readonly;
  const char *snapshot;
  uint64_t cache_size;
  struct acl_vec allow; /* empty: every client may use it */
  unsigned line;        /* where the file defined it (0: command line) */
};
DEFINE_VECTOR(export_config_vec, struct export_config)

enum log_target { LOG_TO_AUTO, LOG_TO_STDERR, LOG_TO_SYSLOG, LOG_TO_JOURNAL };

struct config {
  struct export_config_vec exports; /* [0] is the main export */
  const char *port;
  const char *bind_addr; /* NULL: localhost */
  const char *unix_path;
  bool stdio;
  bool fork;
  const char *pid_file;
  unsigned max_connections;   /* 0: unlimited */
  unsigned handshake_timeout; /* seconds */
  unsigned threads;
  bool verbose;
  const char *config_file; /* --config: exports come from this file */
  enum log_target log;
};

/* Parse argv into cfg (allocated fields live until exit).  Returns 0,
 * 1 when the program should exit successfully (--help, --version), or
 * -1 after printing an error. */
int options_parse(int argc, char **argv, struct config *cfg);
/* Parse a size such as 512, 64k, 1G (1024-based suffixes). */
int options_size(const char *s, uint64_t *out);

/* Read the exports of a configuration file (format: qnbd(8) and
 * systemd/exports.conf.example).  Every error is logged as FILE:LINE:
 * message; any error gives -EINVAL and an empty *out. */
int config_load(const char *path, struct export_config_vec *out);
/* Deep copies (every string malloc'd) and their release. */
int config_export_dup(const struct export_config *src,
                      struct export_config *dst);
void config_export_clear(struct export_config *ec);
void config_exports_free(struct export_config_vec *v);
/* True when a and b open the same backend the same way (everything but
 * the description and the allowed clients is equal). */
bool config_same_source(const struct export_config *a,
                        const struct export_config *b);
bool config_same_acl(const struct acl_vec *a, const struct acl_vec *b);
/* Does rules allow the peer sa?  An empty list allows everyone. */
bool config_acl_allows(const struct acl_vec *rules, const void *sa);

/* ---- exports.c: the exports and their backends ---- */

/* An export lives while someone holds a reference: the server's live
 * list holds one, and so does every connection that looked it up (see
 * exports_get).  An export removed by a reload therefore keeps serving
 * its connections and is destroyed when the last one closes. */
struct export
{
  char *name;
  char *description; /* replaced by a reload only with an atomic store */
  struct backend *backend;
  bool readonly;
  bool any_name;            /* serves whatever name the client asks (plugins) */
  pthread_mutex_t all_lock; /* SERIALIZE_ALL_REQUESTS */
  struct export_config cfg; /* deep copy; allow guarded by exports_lock */
  unsigned refs;            /* atomic */
  char **old_desc;          /* descriptions replaced by reloads */
  size_t nold_desc;
  uv_work_t destroy_work;
};
DEFINE_VECTOR(export_vec, struct export *)

struct server;
struct conn;

/* Open every configured export (logs and returns <0 on failure); file
 * names the configuration file the exports come from, if any. */
int exports_open(const struct export_config_vec *cfgs, const char *file,
                 struct export_vec *out);
/* Open one export (refs = 1). */
int exports_open_one(const struct export_config *ec, struct export **out);
/* Drop the list's references and destroy what nobody else holds. */
void exports_close(struct export_vec *v);
/* Drop a reference; the last one destroys the export (which may block:
 * from the loop thread use exports_unref_async). */
void exports_unref(struct export *e);
void exports_unref_async(uv_loop_t *loop, struct export *e);
/* Find an export by name ("" selects the first) in v (unlocked: loop
 * thread, or a list nobody changes). */
struct export *exports_find(const struct export_vec *v, const char *name);
/* True when some export's backend serialises connections. */
bool exports_serialize_connections(const struct export_vec *v);
/* For the connection c (any thread): find the export called name that
 * c's peer may use, and hold a reference for c until its next lookup or
 * its end.  NULL when there is none. */
struct export *exports_get(struct conn *c, const char *name);
/* Referenced copy of the exports c's peer may use (NBD_OPT_LIST). */
int exports_snapshot(struct conn *c, struct export_vec *out);
void exports_snapshot_release(struct export_vec *v);
/* May c's peer use at least one export?  (loop thread, at accept) */
bool exports_peer_allowed(struct server *srv, struct conn *c);
/* The connection ends: drop its reference (loop thread). */
void exports_conn_release(struct conn *c);

/* ---- pool.c: worker threads ---- */

struct pool_job {
  void (*work)(struct pool_job *j); /* on a worker thread */
  void (*done)(struct pool_job *j); /* then on the loop thread */
  struct pool_job *next;
};

struct pool {
  pthread_mutex_t lock; /* guards head, tail, idle, wakeups, stop */
  pthread_cond_t cond;
  struct pool_job *head, *tail;
  unsigned idle, wakeups;
  unsigned queued; /* jobs not yet taken; atomic, read unlocked */
  bool stop;
  pthread_mutex_t done_lock; /* guards done_head/done_tail */
  struct pool_job *done_head, *done_tail;
  uv_async_t async;
  unsigned outstanding; /* submitted, done() not yet run (loop only) */
  pthread_t *threads;
  unsigned nthreads;
};

int pool_init(struct pool *p, uv_loop_t *loop, unsigned nthreads);
/* Submit from the loop thread; j->done runs there afterwards. */
void pool_submit(struct pool *p, struct pool_job *j);
/* Finish queued jobs, join the threads, close the async handle. */
void pool_stop(struct pool *p);

#define container_of(ptr, type, member)                                        \
  ((type *)((char *)(ptr)-offsetof(type, member)))

/* ---- main.c / listen.c: the server ---- */

struct listener {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } h;
  struct server *srv;
  struct listener *next;
};

struct conn;

struct server {
  uv_loop_t *loop;
  const struct config *cfg;
  struct export_vec exports;
  struct listener *listeners;
  struct conn *conns;   /* every live connection */
  struct conn *waiting; /* accepted but held (serialised connections) */
  unsigned nconns;
  uint64_t next_conn_id;
  /* Guards the exports list (not the exports) against the worker
   * threads that read it; only the loop thread changes it. */
  pthread_mutex_t exports_lock;
  uv_signal_t sig_hup;
  uv_timer_t watchdog_timer;
  struct reload *reload; /* the reload in progress, if any */
  bool reload_again;     /* SIGHUP arrived during a reload */
  bool shutting_down;
  bool serialize_connections;
  bool stdio_mode;
  uv_signal_t sig_int, sig_term;
  uv_async_t shutdown_async;
  uv_timer_t shutdown_timer;
  struct pool pool;        /* backend calls */
  uv_check_t flush_check;  /* sends queued replies (output.c) */
  struct conn *flush_list; /* connections with queued replies */
};

/* Begin a graceful shutdown (loop thread). */
void server_shutdown(struct server *srv);

/* ---- notify.c: the systemd notification protocol (sd_notify(3)) ---- */

/* Connect to $NOTIFY_SOCKET if set, and start the watchdog pings when
 * $WATCHDOG_USEC asks for them (loop thread).  Returns 0 or <0. */
int notify_init(struct server *srv);
/* Send one notification ("READY=1", ...); a no-op without a socket. */
void notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void notify_stop(struct server *srv);

/* ---- reload.c: SIGHUP re-reads the configuration file ---- */

/* Install the SIGHUP handler (when the exports come from a file). */
void reload_init(struct server *srv);
void reload_stop(struct server *srv);

/* Start listening as the configuration says (TCP, Unix, LISTEN_FDS).
 * *uri receives a malloc'd URI to print (NULL for socket activation). */
int listen_start(struct server *srv, char **uri);
void listen_stop(struct server *srv);
/* Serve one connection on stdin/stdout. */
int listen_stdio(struct server *srv);

/* ---- conn.c: one client connection ---- */

enum conn_state {
  CS_CLIENT_FLAGS, /* waiting for the 32-bit client flags */
  CS_OPT_HEADER,   /* waiting for an option header */
  CS_OPT_BUSY,     /* an option runs on a worker */
  CS_REQ_HEADER,   /* transmission: waiting for a request header */
  CS_PAYLOAD,      /* receiving a WRITE payload into a request */
  CS_SKIP,         /* discarding bytes, then act on skip_req */
  CS_CLOSING,      /* no more input; close once idle */
};

struct request;

struct meta_sel {
  uint32_t id;  /* context id given to the client */
  unsigned ctx; /* backend context index (0: base:allocation) */
};
DEFINE_VECTOR(meta_sel_vec, struct meta_sel)

struct conn {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } h;
  uv_pipe_t out_pipe; /* stdio mode: stdout (input is h) */
  bool stdio;
  struct server *srv;
  struct conn *next, *prev;
  uint64_t id;
  int fd; /* the socket, for peer queries */
  enum conn_state state;
  uv_timer_t handshake_timer;
  int closing_handles; /* uv_close callbacks still to come */

  /* Input buffer for headers and option data: bytes rbuf[rpos..rlen). */
  char *rbuf;
  size_t rpos, rlen, rcap;
  uint64_t skip_left;          /* CS_SKIP */
  struct request *payload_req; /* CS_PAYLOAD / CS_SKIP target */
  uint64_t payload_got;
  bool reading;

  /* Handshake state. */
  uint32_t client_flags;
  unsigned nopts;
  uint32_t cur_opt, cur_opt_len;
  struct pool_job opt_job;
  struct opt_out *opt_out;
  bool opt_too_big; /* CS_SKIP of an oversized option */
  bool structured;
  bool extended;
  char *meta_export;         /* the export SET_META_CONTEXT named */
  struct meta_sel_vec metas; /* selected contexts */

  /* Transmission state (set by GO / EXPORT_NAME). */
  struct export *exp;     /* NULL or exp_ref (exports_get) */
  struct export *exp_ref; /* the reference this connection holds */
  void *handle;
  bool handle_open;
  struct backend_caps caps;
  struct backend_block_size bs;
  uint64_t size;
  uint16_t tflags;
  const char *const *ctx_names; /* backend meta context names */
  int nctx;
  pthread_mutex_t handle_lock; /* SERIALIZE_REQUESTS */
  char *export_name;           /* as the client asked */

  unsigned inflight;
  uint64_t inflight_bytes;
  bool dirty;     /* writes since the last flush */
  bool want_disc; /* set by a worker (nbdkit_disconnect); atomic */
  struct pool_job close_job;
  uv_shutdown_t shutdown_req;
  bool disc; /* DISC received or fatal error: close when idle */
  struct request *free_reqs;
  struct request *outq_head, *outq_tail; /* replies to send */
  bool out_pending;                      /* on srv->flush_list */
  struct conn *flush_next;
};

/* Accept a new connection on server socket (listener) or adopt fd. */
void conn_accept(struct listener *l);
int conn_new_stdio(struct server *srv);
/* Close every connection gracefully (server shutdown). */
void conn_shutdown_all(struct server *srv);
/* Pause/resume reading as back-pressure and state allow. */
void conn_update_reading(struct conn *c);
/* Queue bytes to the client; data is copied.  Returns 0 or <0. */
int conn_send_copy(struct conn *c, const void *data, size_t len);
/* Mark the connection for closing once in-flight work is done. */
void conn_close_when_idle(struct conn *c);
/* Start the handshake on a connection (greeting, timer, reading). */
void conn_start(struct conn *c);
/* Called by the transmission code when a request completed. */
void conn_request_done(struct conn *c, struct request *r);
/* Continue parsing buffered input (after an option finished). */
void conn_process_input(struct conn *c);
/* An option job finished (loop thread): send o, move on. */
void conn_option_done(struct conn *c, struct opt_out *o);
/* The stream replies go to. */
uv_stream_t *conn_out(struct conn *c);
void conn_info(const struct conn *c, struct backend_conn_info *ci);

/* ---- handshake*.c: option haggling (runs on a worker) ---- */

/* Output of an option job: bytes to send, and what to do next. */
struct opt_out {
  char *buf;
  size_t len, cap;
  bool enter_transmission; /* GO / EXPORT_NAME succeeded */
  bool close;              /* hang up after sending */
};

/* Start processing the option in c->cur_opt whose data is the first
 * c->cur_opt_len bytes of c->rbuf (on a worker). */
void handshake_start_option(struct conn *c);
/* The initial greeting (16 + 2 bytes). */
void handshake_greeting(char out[18]);

/* Helpers shared by the handshake files. */
int opt_reply(struct opt_out *o, uint32_t opt, uint32_t type, const void *data,
              uint32_t len);
int opt_reply_err(struct opt_out *o, uint32_t opt, uint32_t type,
                  const char *msg);
int opt_append(struct opt_out *o, const void *data, size_t len);
int handshake_info_go(struct conn *c, uint32_t opt, const char *data,
                      uint32_t len, struct opt_out *o);
int handshake_export_name(struct conn *c, const char *data, uint32_t len,
                          struct opt_out *o);
int handshake_meta(struct conn *c, uint32_t opt, const char *data, uint32_t len,
                   struct opt_out *o);
/* Open c->handle on export e and learn size, caps, block sizes.  On
 * failure logs and returns <0 with nothing open. */
int handshake_open_export(struct conn *c, struct export *e, const char *name);
void handshake_close_export(struct conn *c);
/* After GO: drop a meta context selection made for another export. */
void handshake_meta_check_export(struct conn *c);
int handshake_list_entry(struct opt_out *o,
                         const struct backend_export_entry *e);
uint16_t handshake_tflags(const struct conn *c);

/* ---- transmission.c: requests ---- */

struct request {
  struct conn *c;
  struct request *next_free;
  struct request *next_out; /* output queue */
  struct pool_job job;
  uv_write_t wreq;
  uint16_t flags, type;
  uint64_t cookie, offset, count;
  int err; /* positive NBD error to send, 0 for success */
  const char *errmsg;
  bool send_reply;
  char *buf; /* payload or read data */
  size_t bufcap;
  /* Reply: header bytes in hdr, iovs into hdr and buf. */
  char *hdr;
  size_t hdrlen, hdrcap;
  uv_buf_t *iov;
  uint8_t *iov_in_hdr; /* iov[i] is an offset into hdr */
  unsigned niov, iovcap;
};

/* Handle a complete request header (c->rbuf).  Returns 0, or <0 when
 * the connection must be dropped. */
int transmission_request(struct conn *c, const char *hdr);
/* The payload of c->payload_req has fully arrived: dispatch it. */
void transmission_payload_done(struct conn *c, struct request *r);
void request_free_all(struct conn *c);
void request_release(struct conn *c, struct request *r);

/* ---- output.c: batched reply sending ---- */

void output_init(struct server *srv);
/* Queue r's reply; it goes out before the loop sleeps again, and
 * conn_request_done(c, r) runs once it is written (or dropped). */
void output_queue(struct conn *c, struct request *r);

/* ---- reply.c: reply encoding (worker or loop thread) ---- */

int reply_build(struct request *r);
uint32_t reply_errno(int negerr);

/* ---- worker.c: backend calls under the thread model ---- */

/* Serialise as the export's thread model requires, around a call. */
void worker_lock(struct conn *c);
void worker_unlock(struct conn *c);
/* Name the connection the calling worker serves (NULL: none). */
void worker_set_current(struct conn *c);
/* The same for calls outside a handle (list_exports, open). */
void worker_lock_export(struct export *e);
void worker_unlock_export(struct export *e);
/* Backend operations with the server-side emulations (zero, fua,
 * cache) and locking.  Return 0 or a negative errno. */
int worker_pread(struct conn *c, void *buf, uint64_t count, uint64_t off);
int worker_pwrite(struct conn *c, const void *buf, uint64_t count, uint64_t off,
                  uint32_t flags);
int worker_zero(struct conn *c, uint64_t count, uint64_t off, uint32_t flags);
int worker_trim(struct conn *c, uint64_t count, uint64_t off, uint32_t flags);
int worker_flush(struct conn *c);
int worker_cache(struct conn *c, uint64_t count, uint64_t off);
int worker_extents(struct conn *c, unsigned ctx, uint64_t count, uint64_t off,
                   uint32_t flags, struct extents *e);

#endif
