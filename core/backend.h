/* The one interface every export implements: a raw file, the in-memory
 * disk, the qcow2 engine and nbdkit plugins are all backends.
 *
 * A backend has two levels, as nbdkit plugins do:
 *  - struct backend: one per configured export source (a file, a plugin
 *    instance), created at start-up and shared by every connection;
 *  - a handle: what open() returns for one connection (or one export
 *    name).  Backends without per-connection state return their shared
 *    state.  Every data callback takes the handle.
 *
 * Conventions: callbacks return 0 (or a non-negative value where noted)
 * or a negative errno.  Counts are 64-bit so that extended-header
 * requests (TRIM, WRITE_ZEROES, BLOCK_STATUS, CACHE) fit; READ and WRITE
 * are bounded by the server's maximum payload.  The server validates
 * every range against get_size() before calling, and serialises calls
 * as thread_model says: a backend never sees more concurrency than it
 * declares.
 */
#ifndef QNBD_CORE_BACKEND_H
#define QNBD_CORE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/extents.h"

/* Concurrency a backend accepts (values and meaning as in nbdkit). */
enum backend_thread_model {
  BACKEND_SERIALIZE_CONNECTIONS = 0,  /* one connection at a time */
  BACKEND_SERIALIZE_ALL_REQUESTS = 1, /* one call at a time, process-wide */
  BACKEND_SERIALIZE_REQUESTS = 2,     /* one call at a time per handle */
  BACKEND_PARALLEL = 3,               /* anything goes */
};

/* Request flags passed to data callbacks. */
#define BACKEND_FLAG_FUA       (1u << 0) /* durable before returning */
#define BACKEND_FLAG_MAY_TRIM  (1u << 1) /* zero: may deallocate */
#define BACKEND_FLAG_REQ_ONE   (1u << 2) /* extents: one is enough */
#define BACKEND_FLAG_FAST_ZERO (1u << 3) /* zero: fail -ENOTSUP if slow */

/* How a capability is provided (as nbdkit's NBDKIT_FUA_* / ZERO_*). */
enum backend_support {
  BACKEND_SUPPORT_NONE = 0,
  BACKEND_SUPPORT_EMULATE = 1, /* the server emulates it */
  BACKEND_SUPPORT_NATIVE = 2,
};

/* What a handle can do; filled by caps(). */
struct backend_caps {
  bool can_write;
  bool can_flush;
  bool can_trim;
  enum backend_support can_zero;
  bool can_fast_zero;
  enum backend_support can_fua;
  enum backend_support can_cache;
  bool can_extents;
  bool can_multi_conn;
  bool is_rotational;
};

/* Block size constraints (NBD_INFO_BLOCK_SIZE); zero means no opinion. */
struct backend_block_size {
  uint32_t minimum, preferred, maximum;
};

/* What a backend may learn about the connection it serves. */
struct backend_conn_info {
  uint64_t conn_id;
  const char *export_name; /* as the client asked for it; NULL before */
  bool readonly;           /* the export is served read-only */
  bool is_tls;
  int fd; /* the client socket (getpeername, SO_PEERCRED); -1 if none */
};

/* One name a backend offers for list_exports. */
struct backend_export_entry {
  char *name;
  char *description; /* may be NULL */
};

struct backend;

struct backend_ops {
  const char *name; /* "raw", "memory", "qcow2", "nbdkit" ... */

  /* Optional, called once before serving (after daemonising). */
  int (*after_fork)(struct backend *b);
  /* Optional: a new connection arrives (before any option). */
  int (*preconnect)(struct backend *b, const struct backend_conn_info *ci);
  /* Optional: names this backend serves (NBD_OPT_LIST).  Returns the
   * number of entries stored in a malloc'd *out (each field malloc'd),
   * or a negative errno; -ENOTSUP means "just the export's own name". */
  int (*list_exports)(struct backend *b, const struct backend_conn_info *ci,
                      struct backend_export_entry **out);
  /* Optional: the name an empty export name stands for (malloc'd). */
  int (*default_export)(struct backend *b, const struct backend_conn_info *ci,
                        char **name);

  /* Required: open a handle for one connection. */
  int (*open)(struct backend *b, const struct backend_conn_info *ci,
              void **handle);
  /* Required: close the handle (flushes are the server's job). */
  void (*close)(struct backend *b, void *h);

  /* Required: size in bytes, and what the handle supports. */
  int (*get_size)(void *h, uint64_t *size);
  int (*caps)(void *h, struct backend_caps *caps);
  /* Optional: block size constraints. */
  int (*block_size)(void *h, struct backend_block_size *bs);
  /* Optional: export description for NBD_INFO_DESCRIPTION (malloc'd). */
  int (*description)(void *h, char **desc);

  /* Data: pread is required; the others as caps() says. */
  int (*pread)(void *h, void *buf, uint64_t count, uint64_t offset,
               uint32_t flags);
  /* Optional fast path: pread that never waits for I/O (data in the
   * page cache or in memory), returning -EAGAIN when it would.  The
   * server calls it on its event loop, for BACKEND_PARALLEL backends
   * only, and falls back to pread on a worker after -EAGAIN. */
  int (*pread_nowait)(void *h, void *buf, uint64_t count, uint64_t offset);
  int (*pwrite)(void *h, const void *buf, uint64_t count, uint64_t offset,
                uint32_t flags);
  int (*flush)(void *h, uint32_t flags);
  int (*trim)(void *h, uint64_t count, uint64_t offset, uint32_t flags);
  int (*zero)(void *h, uint64_t count, uint64_t offset, uint32_t flags);
  int (*cache)(void *h, uint64_t count, uint64_t offset, uint32_t flags);

  /* Block status.  ctx 0 is base:allocation (flags NBD_STATE_HOLE 1,
   * NBD_STATE_ZERO 2); ctx >= 1 indexes the names meta_contexts()
   * returned (qemu:allocation-depth, qemu:dirty-bitmap:NAME ...).  Add
   * at least one extent starting at or before offset. */
  int (*extents)(void *h, unsigned ctx, uint64_t count, uint64_t offset,
                 uint32_t flags, struct extents *e);
  /* Optional: extra meta contexts this handle serves; *names stays
   * owned by the backend and valid until close. Returns the count. */
  int (*meta_contexts)(void *h, const char *const **names);

  /* Required: free the backend at exit (after every handle closed). */
  void (*destroy)(struct backend *b);
};

struct backend {
  const struct backend_ops *ops;
  enum backend_thread_model thread_model;
  void *priv; /* the backend's own state */
};

#define BACKEND_STATE_HOLE 1u
#define BACKEND_STATE_ZERO 2u

/* Constructors of the built-in backends.  On failure they log why and
 * return a negative errno. */
int raw_backend_new(const char *path, bool readonly, struct backend **out);
/* A sparse in-memory disk of size bytes. */
int mem_backend_new(uint64_t size, struct backend **out);

#endif
