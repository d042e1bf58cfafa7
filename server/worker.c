/* Backend calls from worker threads: the locking each thread model
 * requires, and the server-side emulations nbdkit also provides (zero
 * by writing zeroes, FUA by flushing, cache by reading). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "internal.h"
#include "server.h"
#include "util/checked.h"
#include "util/log.h"

#define ZERO_BUF_SIZE  (1024u * 1024)
#define CACHE_BUF_SIZE (1024u * 1024)

static const char *zero_buf;
static pthread_once_t zero_once = PTHREAD_ONCE_INIT;

static void zero_init(void)
{
  zero_buf = calloc(1, ZERO_BUF_SIZE);
}

void worker_lock_export(struct export *e)
{
  if (e->backend->thread_model <= BACKEND_SERIALIZE_ALL_REQUESTS)
    pthread_mutex_lock(&e->all_lock);
}

void worker_unlock_export(struct export *e)
{
  if (e->backend->thread_model <= BACKEND_SERIALIZE_ALL_REQUESTS)
    pthread_mutex_unlock(&e->all_lock);
}

void worker_lock(struct conn *c)
{
  worker_lock_export(c->exp);
  if (c->exp->backend->thread_model == BACKEND_SERIALIZE_REQUESTS)
    pthread_mutex_lock(&c->handle_lock);
}

void worker_unlock(struct conn *c)
{
  if (c->exp->backend->thread_model == BACKEND_SERIALIZE_REQUESTS)
    pthread_mutex_unlock(&c->handle_lock);
  worker_unlock_export(c->exp);
}

static const struct backend_ops *ops(const struct conn *c)
{
  return c->exp->backend->ops;
}

int worker_pread(struct conn *c, void *buf, uint64_t count, uint64_t off)
{
  worker_lock(c);
  int r = ops(c)->pread(c->handle, buf, count, off, 0);
  worker_unlock(c);
  return r;
}

int worker_flush(struct conn *c)
{
  if (!ops(c)->flush)
    return -EINVAL;
  worker_lock(c);
  int r = ops(c)->flush(c->handle, 0);
  worker_unlock(c);
  return r;
}

/* FUA emulated as a flush after the write. */
static int fua_after(struct conn *c, int r, uint32_t flags)
{
  if (r < 0 || !(flags & BACKEND_FLAG_FUA) ||
      c->caps.can_fua != BACKEND_SUPPORT_EMULATE)
    return r;
  return worker_flush(c);
}

static uint32_t native_flags(const struct conn *c, uint32_t flags)
{
  if (c->caps.can_fua != BACKEND_SUPPORT_NATIVE)
    flags &= ~BACKEND_FLAG_FUA;
  return flags;
}

int worker_pwrite(struct conn *c, const void *buf, uint64_t count, uint64_t off,
                  uint32_t flags)
{
  worker_lock(c);
  int r = ops(c)->pwrite(c->handle, buf, count, off, native_flags(c, flags));
  worker_unlock(c);
  return fua_after(c, r, flags);
}

int worker_trim(struct conn *c, uint64_t count, uint64_t off, uint32_t flags)
{
  worker_lock(c);
  int r = ops(c)->trim(c->handle, count, off, native_flags(c, flags));
  worker_unlock(c);
  return fua_after(c, r, flags);
}

/* Write zeroes with pwrite, a megabyte at a time. */
static int zero_emulate(struct conn *c, uint64_t count, uint64_t off)
{
  pthread_once(&zero_once, zero_init);
  if (!zero_buf)
    return -ENOMEM;
  while (count > 0) {
    uint64_t n = MIN(count, (uint64_t)ZERO_BUF_SIZE);
    int r = worker_pwrite(c, zero_buf, n, off, 0);
    if (r < 0)
      return r;
    count -= n;
    off += n;
  }
  return 0;
}

int worker_zero(struct conn *c, uint64_t count, uint64_t off, uint32_t flags)
{
  bool fast = flags & BACKEND_FLAG_FAST_ZERO;
  int r;

  if (fast && !c->caps.can_fast_zero)
    return -ENOTSUP;
  if (c->caps.can_zero == BACKEND_SUPPORT_NATIVE) {
    worker_lock(c);
    r = ops(c)->zero(c->handle, count, off, native_flags(c, flags));
    worker_unlock(c);
    if ((r != -ENOTSUP && r != -EOPNOTSUPP) || fast)
      return fua_after(c, r, flags);
  } else if (fast) {
    return -ENOTSUP;
  }
  /* The zeroes were written without FUA: flush for it. */
  r = zero_emulate(c, count, off);
  if (r == 0 && (flags & BACKEND_FLAG_FUA))
    r = worker_flush(c);
  return r;
}

int worker_cache(struct conn *c, uint64_t count, uint64_t off)
{
  if (c->caps.can_cache == BACKEND_SUPPORT_NATIVE) {
    worker_lock(c);
    int r = ops(c)->cache(c->handle, count, off, 0);
    worker_unlock(c);
    return r;
  }
  /* Emulated: read and discard, which warms the backend's caches. */
  char *buf = malloc(MIN(count, (uint64_t)CACHE_BUF_SIZE));
  if (!buf)
    return -ENOMEM;
  int r = 0;
  while (count > 0 && r == 0) {
    uint64_t n = MIN(count, (uint64_t)CACHE_BUF_SIZE);
    r = worker_pread(c, buf, n, off);
    count -= n;
    off += n;
  }
  free(buf);
  return r;
}

int worker_extents(struct conn *c, unsigned ctx, uint64_t count, uint64_t off,
                   uint32_t flags, struct extents *e)
{
  if (!c->caps.can_extents || !ops(c)->extents) {
    /* Without extents everything is data (allocated, not zero). */
    if (ctx != 0)
      return -EINVAL;
    return extents_add(e, off, count, 0);
  }
  worker_lock(c);
  int r = ops(c)->extents(c->handle, ctx, count, off, flags, e);
  worker_unlock(c);
  return r;
}

/* The connection the calling worker thread serves (for plugins that
 * call nbdkit_disconnect from inside a callback). */
static _Thread_local struct conn *current_conn;

void worker_set_current(struct conn *c)
{
  current_conn = c;
  log_set_conn(c ? c->id : 0);
}

void server_disconnect_current(bool force)
{
  if (current_conn)
    __atomic_store_n(&current_conn->want_disc, true, __ATOMIC_RELEASE);
}
