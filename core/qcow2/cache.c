/* The bounded metadata cache: slices of L2 tables, refcount blocks and
 * bitmap tables, one reader/writer lock per cached slice.
 *
 * Lock order: the index lock (c->lock) may be taken first and a slot's
 * lock after it, never the reverse.  Lookups take the index lock shared
 * and pin the slot (an atomic count); a pinned slot is never evicted.
 * Loading a slice holds only that slot's lock exclusively, so readers of
 * other slices and all data I/O proceed; readers of the same slice wait
 * on its lock until it is loaded.  No lock is held when get() returns
 * except the slot's shared lock, released by put(). */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2-int.h"
#include "util/log.h"

enum slot_state { SLOT_EMPTY, SLOT_LOADING, SLOT_VALID, SLOT_ERROR };

struct qcow2_slice {
  pthread_rwlock_t lock; /* guards buf and state once pinned */
  atomic_int pin;
  atomic_bool ref; /* clock bit: used since the hand last passed */
  int state;
  int fd;
  uint64_t off;
  int next; /* hash chain, -1 ends; guarded by c->lock */
  uint8_t *buf;
};

struct qcow2_cache {
  pthread_rwlock_t lock; /* the index: buckets, keys, next, hand */
  size_t nslots, nbuckets, hand;
  int *buckets;
  struct qcow2_slice *slots;
};

struct qcow2_cache *qcow2_cache_new(uint64_t bytes)
{
  size_t n = bytes / QCOW2_SLICE_MAX;
  if (n < 64)
    n = 64;
  if (n > (1u << 22))
    n = 1u << 22;
  struct qcow2_cache *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->nslots = n;
  c->nbuckets = n * 2;
  c->slots = calloc(n, sizeof *c->slots);
  c->buckets = malloc(c->nbuckets * sizeof *c->buckets);
  if (!c->slots || !c->buckets) {
    free(c->slots);
    free(c->buckets);
    free(c);
    return NULL;
  }
  for (size_t i = 0; i < c->nbuckets; i++)
    c->buckets[i] = -1;
  for (size_t i = 0; i < n; i++) {
    pthread_rwlock_init(&c->slots[i].lock, NULL);
    c->slots[i].next = -1;
    c->slots[i].fd = -1;
  }
  pthread_rwlock_init(&c->lock, NULL);
  return c;
}

void qcow2_cache_free(struct qcow2_cache *c)
{
  if (!c)
    return;
  for (size_t i = 0; i < c->nslots; i++) {
    pthread_rwlock_destroy(&c->slots[i].lock);
    free(c->slots[i].buf);
  }
  pthread_rwlock_destroy(&c->lock);
  free(c->slots);
  free(c->buckets);
  free(c);
}

static size_t bucket_of(const struct qcow2_cache *c, int fd, uint64_t off)
{
  uint64_t k =
      (off / 512) * 0x9e3779b97f4a7c15ull ^ (uint64_t)fd * 0xff51afd7ull;
  return (size_t)((k >> 17) % c->nbuckets);
}

static struct qcow2_slice *find(struct qcow2_cache *c, int fd, uint64_t off)
{
  for (int i = c->buckets[bucket_of(c, fd, off)]; i >= 0; i = c->slots[i].next)
    if (c->slots[i].fd == fd && c->slots[i].off == off)
      return &c->slots[i];
  return NULL;
}

/* Called with c->lock held exclusively. */
static void unlink_slot(struct qcow2_cache *c, struct qcow2_slice *s)
{
  if (s->fd < 0)
    return;
  int idx = (int)(s - c->slots);
  int *pp = &c->buckets[bucket_of(c, s->fd, s->off)];
  while (*pp >= 0 && *pp != idx)
    pp = &c->slots[*pp].next;
  if (*pp == idx)
    *pp = s->next;
  s->next = -1;
  s->fd = -1;
}

/* Clock eviction among unpinned slots; c->lock held exclusively, so pins
 * cannot rise meanwhile. */
static struct qcow2_slice *victim(struct qcow2_cache *c)
{
  for (size_t tries = 0; tries < 2 * c->nslots; tries++) {
    struct qcow2_slice *s = &c->slots[c->hand];
    c->hand = (c->hand + 1) % c->nslots;
    if (atomic_load(&s->pin))
      continue;
    if (atomic_exchange(&s->ref, false))
      continue;
    return s;
  }
  return NULL;
}

static int wait_valid(struct qcow2_slice *s, const uint8_t **data)
{
  pthread_rwlock_rdlock(&s->lock);
  if (s->state == SLOT_VALID) {
    *data = s->buf;
    return 0;
  }
  pthread_rwlock_unlock(&s->lock);
  atomic_fetch_sub(&s->pin, 1);
  return -EIO; /* the loader logged why */
}

static int load(struct qcow2_cache *c, struct qcow2_slice *s, size_t len,
                uint64_t file_size)
{
  int r = 0;
  if (!s->buf && !(s->buf = malloc(QCOW2_SLICE_MAX)))
    r = -ENOMEM;
  else if (s->off + len > file_size || s->off + len < s->off) {
    log_error("qcow2: metadata table at offset %#" PRIx64
              " is past the end of the file",
              s->off);
    r = -EIO;
  } else
    r = qcow2_pread_full(s->fd, s->buf, len, s->off);
  s->state = r < 0 ? SLOT_ERROR : SLOT_VALID;
  pthread_rwlock_unlock(&s->lock);
  if (r < 0) {
    pthread_rwlock_wrlock(&c->lock);
    unlink_slot(c, s);
    pthread_rwlock_unlock(&c->lock);
  }
  return r;
}

int qcow2_cache_get(struct qcow2_cache *c, int fd, uint64_t off, size_t len,
                    uint64_t file_size, struct qcow2_slice **out,
                    const uint8_t **data)
{
  for (unsigned spin = 0;; spin++) {
    pthread_rwlock_rdlock(&c->lock);
    struct qcow2_slice *s = find(c, fd, off);
    if (s) {
      atomic_fetch_add(&s->pin, 1);
      atomic_store(&s->ref, true);
      pthread_rwlock_unlock(&c->lock);
      *out = s;
      return wait_valid(s, data);
    }
    pthread_rwlock_unlock(&c->lock);

    pthread_rwlock_wrlock(&c->lock);
    s = find(c, fd, off);
    if (!s && (s = victim(c)) != NULL) {
      unlink_slot(c, s);
      s->fd = fd;
      s->off = off;
      s->state = SLOT_LOADING;
      size_t b = bucket_of(c, fd, off);
      s->next = c->buckets[b];
      c->buckets[b] = (int)(s - c->slots);
      atomic_store(&s->pin, 1);
      atomic_store(&s->ref, true);
      pthread_rwlock_wrlock(&s->lock); /* unpinned: uncontended */
      pthread_rwlock_unlock(&c->lock);
      int r = load(c, s, len, file_size);
      if (r < 0) {
        atomic_fetch_sub(&s->pin, 1);
        return r;
      }
      *out = s;
      return wait_valid(s, data);
    }
    if (s) { /* raced with another loader */
      atomic_fetch_add(&s->pin, 1);
      pthread_rwlock_unlock(&c->lock);
      *out = s;
      return wait_valid(s, data);
    }
    pthread_rwlock_unlock(&c->lock);
    if (spin > 100000)
      return -EBUSY; /* every slot pinned: cannot happen with >= 64 slots
                        and fewer threads, but never loop forever */
    sched_yield();
  }
}

int qcow2_cache_try_get(struct qcow2_cache *c, int fd, uint64_t off,
                        struct qcow2_slice **out, const uint8_t **data)
{
  /* trylock fails only while a writer holds the lock (an insertion, or
   * a slice being loaded): waiting for either could block on I/O. */
  if (pthread_rwlock_tryrdlock(&c->lock) != 0)
    return -EAGAIN;
  struct qcow2_slice *s = find(c, fd, off);
  if (!s) {
    pthread_rwlock_unlock(&c->lock);
    return -EAGAIN;
  }
  atomic_fetch_add(&s->pin, 1);
  atomic_store(&s->ref, true);
  pthread_rwlock_unlock(&c->lock);
  if (pthread_rwlock_tryrdlock(&s->lock) != 0) {
    atomic_fetch_sub(&s->pin, 1);
    return -EAGAIN;
  }
  if (s->state != SLOT_VALID) { /* a failed load: the caller retries */
    pthread_rwlock_unlock(&s->lock);
    atomic_fetch_sub(&s->pin, 1);
    return -EAGAIN;
  }
  *out = s;
  *data = s->buf;
  return 0;
}

void qcow2_cache_put(struct qcow2_cache *c, struct qcow2_slice *s)
{
  (void)c;
  pthread_rwlock_unlock(&s->lock);
  atomic_fetch_sub(&s->pin, 1);
}
