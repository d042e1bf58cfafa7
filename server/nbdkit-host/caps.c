/* The negotiation callbacks of a plugin handle: size, capabilities with
 * nbdkit's defaults for missing callbacks, block size and description
 * (nbdkit-plugin(3) ".get_size", ".can_*", ".block_size",
 * ".export_description"). */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/checked.h"
#include "util/log.h"

#define HOST_MAX_STRING 4096

/* Call an int (*)(void *handle) negotiation callback, or return dflt
 * when it is missing.  -1 from the plugin becomes a negative errno. */
static int host_ask(struct host_handle *hh, int (*fn)(void *), int dflt)
{
  struct host_plugin *hp = hh->conn.hp;
  struct host_saved s;
  int r, err = 0;

  if (!fn)
    return dflt;
  host_enter(&s, hp, &hh->conn);
  r = fn(hh->ph);
  if (r == -1)
    err = host_failure_errno(hp, errno);
  host_leave(&s);
  return r == -1 ? -err : r;
}

int host_get_size(void *h, uint64_t *size)
{
  struct host_handle *hh = h;
  struct host_plugin *hp = hh->conn.hp;
  struct host_saved s;
  int64_t r;
  int err = 0;

  host_enter(&s, hp, &hh->conn);
  r = hp->p.get_size(hh->ph);
  if (r == -1)
    err = host_failure_errno(hp, errno);
  host_leave(&s);
  if (r < 0) {
    if (r != -1)
      log_error("%s: get_size returned invalid size %lld", hp->name,
                (long long)r);
    return err ? -err : -EINVAL;
  }
  *size = (uint64_t)r;
  return 0;
}

/* Capabilities that depend on writing (nbdkit-plugin(3) ".can_zero",
 * ".can_fast_zero", ".can_fua"). */
static int host_write_caps(struct host_handle *hh, struct backend_caps *c)
{
  const struct nbdkit_plugin *p = &hh->conn.hp->p;
  bool has_zero = p->zero || p->_zero_v1;
  bool has_flush = p->flush || p->_flush_v1;
  int r;

  if ((r = host_ask(hh, p->can_zero, has_zero)) < 0)
    return r;
  /* Without (or refused) native zero the server writes zeroes. */
  c->can_zero =
      r && has_zero ? BACKEND_SUPPORT_NATIVE : BACKEND_SUPPORT_EMULATE;
  /* nbdkit 1.32 defaults to fast zero exactly when there is no v2
   * zero (the reference's "Defaults"), even if can_zero says no. */
  r = host_ask(hh, p->can_fast_zero, !p->zero);
  if (r < 0)
    return r;
  c->can_fast_zero = r;
  if ((r = host_ask(hh, p->can_trim, p->trim || p->_trim_v1)) < 0)
    return r;
  c->can_trim = r;
  if ((r = host_ask(hh, p->can_fua,
                    has_flush ? NBDKIT_FUA_EMULATE : NBDKIT_FUA_NONE)) < 0)
    return r;
  if (r > NBDKIT_FUA_NATIVE)
    r = NBDKIT_FUA_NATIVE;
  /* v1 callbacks have no flags argument: FUA can only be emulated. */
  if (r == NBDKIT_FUA_NATIVE && !p->pwrite)
    r = NBDKIT_FUA_EMULATE;
  c->can_fua = (enum backend_support)r;
  return 0;
}

static int host_compute_caps(struct host_handle *hh, struct backend_caps *c)
{
  const struct nbdkit_plugin *p = &hh->conn.hp->p;
  int r = 0;

  *c = (struct backend_caps){0};
  if (!hh->conn.readonly &&
      (r = host_ask(hh, p->can_write, p->pwrite || p->_pwrite_v1)) < 0)
    return r;
  c->can_write = !hh->conn.readonly && r;
  /* In nbdkit's order, which scripted plugins (sh, eval) can observe. */
  if (c->can_write && (r = host_write_caps(hh, c)) < 0)
    return r;
  if ((r = host_ask(hh, p->can_flush, p->flush || p->_flush_v1)) < 0)
    return r;
  c->can_flush = r;
  if ((r = host_ask(hh, p->is_rotational, 0)) < 0)
    return r;
  c->is_rotational = r;
  if ((r = host_ask(hh, p->can_multi_conn, 0)) < 0)
    return r;
  c->can_multi_conn = r;
  r = host_ask(hh, p->can_cache,
               p->cache ? NBDKIT_CACHE_NATIVE : NBDKIT_CACHE_NONE);
  if (r < 0)
    return r;
  c->can_cache = (enum backend_support)MIN(r, NBDKIT_CACHE_NATIVE);
  if ((r = host_ask(hh, p->can_extents, p->extents != NULL)) < 0)
    return r;
  c->can_extents = r;
  return 0;
}

int host_handle_caps(struct host_handle *hh, struct backend_caps *caps)
{
  int r = 0;

  /* Asked once per handle and cached, as nbdkit does per connection. */
  pthread_mutex_lock(&hh->caps_lock);
  if (!hh->caps_known && (r = host_compute_caps(hh, &hh->caps)) == 0) {
    const struct backend_caps *c = &hh->caps;
    hh->caps_known = true;
    log_debug("%s: write=%d flush=%d trim=%d zero=%d fast_zero=%d fua=%d "
              "multi_conn=%d cache=%d extents=%d rotational=%d",
              hh->conn.hp->name, c->can_write, c->can_flush, c->can_trim,
              c->can_zero, c->can_fast_zero, c->can_fua, c->can_multi_conn,
              c->can_cache, c->can_extents, c->is_rotational);
  }
  if (r == 0)
    *caps = hh->caps;
  pthread_mutex_unlock(&hh->caps_lock);
  return r;
}

int host_caps(void *h, struct backend_caps *caps)
{
  return host_handle_caps(h, caps);
}

/* nbdkit-plugin(3) ".block_size": all zero means no information;
 * otherwise minimum a power of 2 up to 64K, preferred a power of 2 in
 * [512, 32M] and >= minimum, maximum >= preferred and a multiple of the
 * minimum, or 0xffffffff. */
static bool host_valid_block_size(uint32_t min, uint32_t pref, uint32_t max)
{
  if (min == 0 && pref == 0 && max == 0)
    return true;
  if (!is_power_of_2(min) || min > 65536)
    return false;
  if (!is_power_of_2(pref) || pref < 512 || pref > 32 * 1024 * 1024 ||
      pref < min)
    return false;
  return max == UINT32_MAX || (max >= pref && max % min == 0);
}

int host_block_size(void *h, struct backend_block_size *bs)
{
  struct host_handle *hh = h;
  struct host_plugin *hp = hh->conn.hp;
  uint32_t min = 0, pref = 0, max = 0;
  struct host_saved s;
  int r, err = 0;

  *bs = (struct backend_block_size){0};
  if (!hp->p.block_size)
    return 0;
  host_enter(&s, hp, &hh->conn);
  r = hp->p.block_size(hh->ph, &min, &pref, &max);
  if (r == -1)
    err = host_failure_errno(hp, errno);
  host_leave(&s);
  if (r == -1)
    return -err;
  if (!host_valid_block_size(min, pref, max)) {
    log_error("%s: block_size returned invalid sizes %u/%u/%u", hp->name, min,
              pref, max);
    return -EINVAL;
  }
  *bs = (struct backend_block_size){min, pref, max};
  return 0;
}

int host_description(void *h, char **desc)
{
  struct host_handle *hh = h;
  struct host_plugin *hp = hh->conn.hp;
  struct host_saved s;
  const char *r;

  *desc = NULL;
  if (!hp->p.export_description)
    return 0;
  host_enter(&s, hp, &hh->conn);
  r = hp->p.export_description(hh->ph);
  /* NULL or too long: no description, which is not an error. */
  if (r && strlen(r) <= HOST_MAX_STRING)
    *desc = strdup(r);
  host_leave(&s);
  return r && strlen(r) <= HOST_MAX_STRING && !*desc ? -ENOMEM : 0;
}
