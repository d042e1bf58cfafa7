/* The data callbacks of a plugin handle: flags translated to nbdkit's,
 * 64-bit requests split for the plugin's 32-bit counts, v1 callbacks,
 * zero falling back to writes, cache emulation and extents
 * (nbdkit-plugin(3) ".pread" ... ".cache", "Extents list"). */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

#include "util/checked.h"
#include "util/log.h"

/* Largest piece handed to a plugin: fits uint32_t and keeps any
 * power-of-two alignment of the request. */
#define HOST_CHUNK (1u << 31)
/* Zeroes for emulated writes of zeroes, and scratch for cache. */
#define HOST_ZERO_BUF (1u << 20)
static char host_zeroes[HOST_ZERO_BUF];

/* nbdkit's flag bits from ours. */
static uint32_t host_flags(uint32_t f)
{
  return (f & BACKEND_FLAG_FUA ? NBDKIT_FLAG_FUA : 0) |
         (f & BACKEND_FLAG_MAY_TRIM ? NBDKIT_FLAG_MAY_TRIM : 0) |
         (f & BACKEND_FLAG_REQ_ONE ? NBDKIT_FLAG_REQ_ONE : 0) |
         (f & BACKEND_FLAG_FAST_ZERO ? NBDKIT_FLAG_FAST_ZERO : 0);
}

/* FUA reaches the plugin only when it handles FUA natively; otherwise
 * the server emulates it with a flush. */
static uint32_t host_fua(struct host_handle *hh, uint32_t flags)
{
  struct backend_caps c;

  if (!(flags & BACKEND_FLAG_FUA))
    return flags;
  if (host_handle_caps(hh, &c) == 0 && c.can_fua == BACKEND_SUPPORT_NATIVE)
    return flags;
  return flags & ~BACKEND_FLAG_FUA;
}

/* Which data callback a call goes to. */
enum host_op { HOST_PREAD, HOST_PWRITE, HOST_TRIM, HOST_ZERO, HOST_CACHE };

/* One plugin call of at most HOST_CHUNK bytes; 0 or a negative errno. */
static int host_call(struct host_handle *hh, enum host_op op, void *buf,
                     uint32_t n, uint64_t off, uint32_t flags)
{
  const struct nbdkit_plugin *p = &hh->conn.hp->p;
  uint32_t nf = host_flags(flags);
  struct host_saved s;
  int r = -1, err = 0;

  /* A plugin that claims a capability without its callback. */
  if ((op == HOST_PWRITE && !p->pwrite && !p->_pwrite_v1) ||
      (op == HOST_TRIM && !p->trim && !p->_trim_v1) ||
      (op == HOST_ZERO && !p->zero && !p->_zero_v1) ||
      (op == HOST_CACHE && !p->cache))
    return -EINVAL;
  host_enter(&s, hh->conn.hp, &hh->conn);
  errno = 0;
  switch (op) {
  case HOST_PREAD:
    r = p->pread ? p->pread(hh->ph, buf, n, off, 0)
                 : p->_pread_v1(hh->ph, buf, n, off);
    break;
  case HOST_PWRITE:
    r = p->pwrite ? p->pwrite(hh->ph, buf, n, off, nf & NBDKIT_FLAG_FUA)
                  : p->_pwrite_v1(hh->ph, buf, n, off);
    break;
  case HOST_TRIM:
    r = p->trim ? p->trim(hh->ph, n, off, nf & NBDKIT_FLAG_FUA)
                : p->_trim_v1(hh->ph, n, off);
    break;
  case HOST_ZERO:
    r = p->zero ? p->zero(hh->ph, n, off, nf)
                : p->_zero_v1(hh->ph, n, off, !!(nf & NBDKIT_FLAG_MAY_TRIM));
    break;
  case HOST_CACHE:
    r = p->cache(hh->ph, n, off, 0);
    break;
  }
  if (r == -1)
    err = host_failure_errno(hh->conn.hp, errno);
  host_leave(&s);
  return r == -1 ? -err : 0;
}

/* Split [off, off+count) into plugin-sized calls. */
static int host_split(struct host_handle *hh, enum host_op op, char *buf,
                      uint64_t count, uint64_t off, uint32_t flags)
{
  while (count > 0) {
    uint32_t n = (uint32_t)MIN(count, (uint64_t)HOST_CHUNK);
    int r = host_call(hh, op, buf, n, off, flags);
    if (r < 0)
      return r;
    if (buf && op != HOST_CACHE)
      buf += n;
    count -= n;
    off += n;
  }
  return 0;
}

int host_pread(void *h, void *buf, uint64_t count, uint64_t offset,
               uint32_t flags)
{
  return host_split(h, HOST_PREAD, buf, count, offset, 0);
}

int host_pwrite(void *h, const void *buf, uint64_t count, uint64_t offset,
                uint32_t flags)
{
  /* The plugin's pwrite takes const void *; host_split only forwards. */
  return host_split(h, HOST_PWRITE, (char *)(uintptr_t)buf, count, offset,
                    host_fua(h, flags));
}

int host_flush(void *h, uint32_t flags)
{
  struct host_handle *hh = h;
  const struct nbdkit_plugin *p = &hh->conn.hp->p;
  struct host_saved s;
  int r, err = 0;

  if (!p->flush && !p->_flush_v1)
    return -EINVAL;
  host_enter(&s, hh->conn.hp, &hh->conn);
  r = p->flush ? p->flush(hh->ph, 0) : p->_flush_v1(hh->ph);
  if (r == -1)
    err = host_failure_errno(hh->conn.hp, errno);
  host_leave(&s);
  return r == -1 ? -err : 0;
}

int host_trim(void *h, uint64_t count, uint64_t offset, uint32_t flags)
{
  struct host_handle *hh = h;

  return host_split(h, HOST_TRIM, NULL, count, offset, host_fua(hh, flags));
}

/* Write zeroes with pwrite (nbdkit-plugin(3) ".zero": the automatic
 * fallback). */
static int host_zero_by_write(struct host_handle *hh, uint64_t count,
                              uint64_t off, uint32_t flags)
{
  while (count > 0) {
    uint32_t n = (uint32_t)MIN(count, (uint64_t)HOST_ZERO_BUF);
    int r = host_call(hh, HOST_PWRITE, host_zeroes, n, off,
                      flags & BACKEND_FLAG_FUA);
    if (r < 0)
      return r;
    count -= n;
    off += n;
  }
  return 0;
}

int host_zero(void *h, uint64_t count, uint64_t offset, uint32_t flags)
{
  struct host_handle *hh = h;
  const struct nbdkit_plugin *p = &hh->conn.hp->p;
  bool fast = flags & BACKEND_FLAG_FAST_ZERO;
  struct backend_caps c;
  int r;

  if ((r = host_handle_caps(hh, &c)) < 0)
    return r;
  if (!c.can_write)
    return -EROFS;
  flags = host_fua(hh, flags);
  /* Emulation is never fast; v1 zero cannot be told to be fast. */
  if (fast && (c.can_zero != BACKEND_SUPPORT_NATIVE || !p->zero))
    return -ENOTSUP;
  if (c.can_zero != BACKEND_SUPPORT_NATIVE)
    return host_zero_by_write(hh, count, offset, flags);
  while (count > 0) {
    uint32_t n = (uint32_t)MIN(count, (uint64_t)HOST_CHUNK);
    r = host_call(hh, HOST_ZERO, NULL, n, offset, flags);
    if ((r == -ENOTSUP || r == -EOPNOTSUPP) && !fast)
      return host_zero_by_write(hh, count, offset, flags);
    if (r < 0)
      return r;
    count -= n;
    offset += n;
  }
  return 0;
}

int host_cache(void *h, uint64_t count, uint64_t offset, uint32_t flags)
{
  struct host_handle *hh = h;
  struct backend_caps c;
  char *scratch;
  int r;

  if ((r = host_handle_caps(hh, &c)) < 0)
    return r;
  if (c.can_cache == BACKEND_SUPPORT_NONE)
    return -EINVAL;
  if (c.can_cache == BACKEND_SUPPORT_NATIVE) {
    /* Native without a callback: instant success (".can_cache"). */
    if (!hh->conn.hp->p.cache)
      return 0;
    return host_split(hh, HOST_CACHE, NULL, count, offset, 0);
  }
  /* Emulated: read and discard. */
  scratch = malloc(HOST_ZERO_BUF);
  if (!scratch)
    return -ENOMEM;
  while (count > 0 && r == 0) {
    uint32_t n = (uint32_t)MIN(count, (uint64_t)HOST_ZERO_BUF);
    r = host_call(hh, HOST_PREAD, scratch, n, offset, 0);
    count -= n;
    offset += n;
  }
  free(scratch);
  return r;
}

int host_extents(void *h, unsigned ctx, uint64_t count, uint64_t offset,
                 uint32_t flags, struct extents *e)
{
  struct host_handle *hh = h;
  const struct nbdkit_plugin *p = &hh->conn.hp->p;
  struct nbdkit_extents x;
  struct host_saved s;
  uint32_t n = (uint32_t)MIN(count, (uint64_t)HOST_CHUNK);
  int r, err = 0;

  if (ctx != 0)
    return -EINVAL; /* plugins only know base:allocation */
  if (!p->extents)
    return extents_add(e, offset, count, 0); /* all data */
  host_extents_wrap(&x, e);
  host_enter(&s, hh->conn.hp, &hh->conn);
  r = p->extents(hh->ph, n, offset, host_flags(flags), &x);
  if (r == -1)
    err = host_failure_errno(hh->conn.hp, errno);
  host_leave(&s);
  if (r == -1)
    return -err;
  if (e->v.len == 0) {
    /* A plugin bug; nbdkit answers it with EINVAL too. */
    log_error("%s: extents: the plugin must return at least one extent "
              "(offset %llu)",
              hh->conn.hp->name, (unsigned long long)offset);
    return -EINVAL;
  }
  return 0;
}
