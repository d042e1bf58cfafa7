/* Private declarations of the nbdkit plugin host, one section per
 * source file.
 *
 * Threads: struct host_plugin is written only while loading (one
 * thread) and read-only afterwards, except the fields its lock guards.
 * A struct host_conn belongs to one connection; any thread serving it
 * may intern strings into it under its lock.  The current connection
 * of a thread is a thread-local set around every plugin callback.
 *
 * Lock order: host_handle.caps_lock (held while the plugin answers its
 * can_* callbacks), then host_plugin.lock or host_conn.lock (taken when
 * the plugin interns a string; never held while calling the plugin).
 */
#ifndef QNBD_NBDKIT_HOST_INTERNAL_H
#define QNBD_NBDKIT_HOST_INTERNAL_H

/* asprintf, strndup, struct ucred: include this header first. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "util/vector.h"

DEFINE_VECTOR(host_str_vec, char *)

/* Strings interned before a connection has a handle (preconnect,
 * list_exports, default_export): kept per connection id until that
 * connection opens a handle, else until unload. */
struct host_pending {
  uint64_t conn_id;
  struct host_str_vec strs;
};
DEFINE_VECTOR(host_pending_vec, struct host_pending)

struct host_plugin {
  struct nbdkit_plugin p; /* our copy of the plugin's struct, zero-extended */
  void *dl;
  char *path;
  const char *name;                /* p.name */
  struct host_str_vec config_strs; /* keys and values passed to config */
  bool registered;                 /* in load.c's list of loaded plugins */
  bool after_fork_done;
  pthread_mutex_t lock;            /* guards the two lists below */
  struct host_str_vec global_strs; /* interned outside any connection */
  struct host_pending_vec pending; /* interned before open */
};

struct host_conn {
  struct host_plugin *hp;
  uint64_t conn_id;
  const char *export_name;
  bool readonly;
  bool is_tls;
  int fd;                   /* client socket or -1 */
  pthread_mutex_t lock;     /* guards strs */
  struct host_str_vec strs; /* interned strings, freed at close */
};

struct host_handle {
  struct host_conn conn;
  void *ph; /* what the plugin's open returned */
  char *export_name;
  pthread_mutex_t caps_lock;
  bool caps_known;
  struct backend_caps caps;
};

/* ---- call.c: the per-thread context around plugin callbacks ---- */

/* The connection and plugin the calling thread is running a callback
 * for (NULL outside callbacks), and the error nbdkit_set_error stored. */
extern _Thread_local struct host_conn *host_cur_conn;
extern _Thread_local struct host_plugin *host_cur_plugin;
extern _Thread_local int host_cur_error;

struct host_saved {
  struct host_conn *conn;
  struct host_plugin *plugin;
};
/* Make (hp, conn) current and clear the stored error. */
void host_enter(struct host_saved *s, struct host_plugin *hp,
                struct host_conn *conn);
void host_leave(const struct host_saved *s);
/* The errno of a failed data callback (nbdkit-plugin(3) "Error
 * handling"): the nbdkit_set_error value, else errno when the plugin
 * preserves it, else EIO.  Pass errno as it was right after the call. */
int host_failure_errno(const struct host_plugin *hp, int saved_errno);
/* Free every string of v. */
void host_str_vec_free(struct host_str_vec *v);
/* Set by nbdkit_shutdown; wakes nbdkit_nanosleep. */
bool host_shutting_down(void);
void host_set_shutting_down(void);
/* stdio_safe (nbdkit_host_set_stdio). */
extern bool host_stdio_busy;

/* ---- load.c: finding, loading and configuring a plugin ---- */

extern const struct backend_ops host_backend_ops;
void host_plugin_unload(struct host_plugin *hp);

/* ---- conn.c: connection-scoped backend ops ---- */

int host_after_fork(struct backend *b);
int host_preconnect(struct backend *b, const struct backend_conn_info *ci);
int host_list_exports(struct backend *b, const struct backend_conn_info *ci,
                      struct backend_export_entry **out);
int host_default_export(struct backend *b, const struct backend_conn_info *ci,
                        char **name);
int host_open(struct backend *b, const struct backend_conn_info *ci,
              void **handle);
void host_close(struct backend *b, void *h);
void host_destroy(struct backend *b);

/* ---- caps.c: negotiation callbacks and nbdkit's defaults ---- */

int host_get_size(void *h, uint64_t *size);
int host_caps(void *h, struct backend_caps *caps);
int host_block_size(void *h, struct backend_block_size *bs);
int host_description(void *h, char **desc);
/* The handle's caps, computing them on first use. */
int host_handle_caps(struct host_handle *hh, struct backend_caps *caps);

/* ---- io.c: data callbacks ---- */

int host_pread(void *h, void *buf, uint64_t count, uint64_t offset,
               uint32_t flags);
int host_pwrite(void *h, const void *buf, uint64_t count, uint64_t offset,
                uint32_t flags);
int host_flush(void *h, uint32_t flags);
int host_trim(void *h, uint64_t count, uint64_t offset, uint32_t flags);
int host_zero(void *h, uint64_t count, uint64_t offset, uint32_t flags);
int host_cache(void *h, uint64_t count, uint64_t offset, uint32_t flags);
int host_extents(void *h, unsigned ctx, uint64_t count, uint64_t offset,
                 uint32_t flags, struct extents *e);

/* ---- lists.c: struct nbdkit_extents and struct nbdkit_exports ---- */

struct nbdkit_extents {
  struct extents *e;  /* where accepted extents go */
  struct extents own; /* e points here for nbdkit_extents_new */
  uint64_t start, end;
  uint64_t next; /* where the next extent must begin */
  bool started;
};
/* Wrap e (already initialised by the server) for a plugin callback. */
void host_extents_wrap(struct nbdkit_extents *x, struct extents *e);

DEFINE_VECTOR(host_export_vec, struct backend_export_entry)
struct nbdkit_exports {
  struct host_export_vec v;
  bool use_default;
};
void host_exports_clear(struct nbdkit_exports *x);

/* ---- intern.c: strings that live as long as their connection ---- */

/* Take ownership of s (malloc'd) until the current connection closes,
 * or until unload outside connections.  Returns s, or NULL (and frees
 * s) on allocation failure. */
const char *host_intern(char *s);
/* Move strings interned before open for conn_id into conn. */
void host_adopt_pending(struct host_plugin *hp, struct host_conn *conn);
/* After a pre-open callback: keep conn's strings for conn->conn_id. */
void host_keep_pending(struct host_plugin *hp, struct host_conn *conn);

#endif
