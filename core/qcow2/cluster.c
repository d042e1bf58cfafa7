/* The cluster map: guest offset -> L1 -> L2 slice -> (sub)cluster type
 * and host offset, with every reserved bit and alignment checked
 * (qcow2.txt "Cluster mapping", "Extended L2 Entries"), and refcount
 * lookups (qcow2.txt "Host cluster management"). */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "qcow2-int.h"
#include "util/checked.h"
#include "util/endian.h"
#include "util/log.h"

static int corrupt(struct qcow2_image *q, uint64_t entry_off, uint64_t guest,
                   const char *why)
{
  log_error("qcow2: %s: corrupt L2 entry at offset %#" PRIx64
            " (guest offset %#" PRIx64 "): %s",
            q->filename, entry_off, guest, why);
  return -EIO;
}

/* Classify subcluster sc of an L2 entry; *host is the subcluster's host
 * offset when the type has one. */
static int classify(struct qcow2_image *q, uint64_t e, uint64_t bm, unsigned sc,
                    uint64_t entry_off, uint64_t guest, struct qcow2_run *r)
{
  if (e & QCOW2_OFLAG_COMPRESSED) {
    if (q->ext_l2 && bm)
      return corrupt(q, entry_off, guest, "compressed cluster with a bitmap");
    if (q->h.data_file)
      return corrupt(q, entry_off, guest,
                     "compressed cluster with an external data file");
    unsigned x = 62 - (q->h.cluster_bits - 8);
    uint64_t coff = e & ((1ull << x) - 1);
    uint64_t nsec = ((e >> x) & ((1ull << (q->h.cluster_bits - 8)) - 1)) + 1;
    if (coff < q->cluster_size)
      return corrupt(q, entry_off, guest, "compressed data in the header");
    r->type = QCOW2_SC_COMPRESSED;
    r->host = coff;
    r->csize = nsec * 512 - (coff & 511);
    return 0;
  }
  if (e & QCOW2_L2_STD_RESERVED)
    return corrupt(q, entry_off, guest, "reserved bits set");
  uint64_t off = e & QCOW2_OFFSET_MASK;
  bool has_off = off || (q->h.data_file && (e & QCOW2_OFLAG_COPIED));
  if (has_off && (off & (q->cluster_size - 1)))
    return corrupt(q, entry_off, guest, "unaligned host cluster offset");
  if (has_off && !q->h.data_file && off < q->cluster_size)
    return corrupt(q, entry_off, guest, "data cluster overlaps the header");
  bool zero, alloc;
  if (q->ext_l2) {
    if (e & QCOW2_OFLAG_ZERO)
      return corrupt(q, entry_off, guest, "zero flag set with extended L2");
    alloc = (bm >> sc) & 1;
    zero = (bm >> (32 + sc)) & 1;
    if (alloc && zero)
      return corrupt(q, entry_off, guest, "subcluster both allocated and zero");
    if (alloc && !has_off)
      return corrupt(q, entry_off, guest,
                     "allocated subcluster in an unallocated cluster");
  } else {
    zero = e & QCOW2_OFLAG_ZERO;
    alloc = !zero;
  }
  r->host = off + ((uint64_t)sc << q->sc_bits);
  if (!has_off)
    r->type = zero ? QCOW2_SC_ZERO_PLAIN : QCOW2_SC_UNALLOC_PLAIN;
  else if (zero)
    r->type = QCOW2_SC_ZERO_ALLOC;
  else
    r->type = alloc ? QCOW2_SC_NORMAL : QCOW2_SC_UNALLOC_ALLOC;
  return 0;
}

static bool has_host(enum qcow2_sc_type t)
{
  return t == QCOW2_SC_NORMAL || t == QCOW2_SC_ZERO_ALLOC ||
         t == QCOW2_SC_UNALLOC_ALLOC;
}

/* The L2 table offset covering off, 0 when unallocated. */
static int l2_offset(struct qcow2_image *q, uint64_t off, uint64_t *l2)
{
  uint64_t idx = off >> (q->h.cluster_bits + q->l2_bits);
  if (idx >= q->l1_size) {
    *l2 = 0;
    return 0;
  }
  uint64_t e = q->l1[idx];
  *l2 = e & QCOW2_OFFSET_MASK;
  const char *why = NULL;
  if (e & QCOW2_L1_RESERVED)
    why = "reserved bits set";
  else if (*l2 & (q->cluster_size - 1))
    why = "unaligned L2 table offset";
  else if (*l2 && *l2 < q->cluster_size)
    why = "L2 table overlaps the header";
  if (why) {
    log_error("qcow2: %s: corrupt L1 entry %" PRIu64 " (L2 offset %#" PRIx64
              "): %s",
              q->filename, idx, *l2, why);
    return -EIO;
  }
  return 0;
}

/* Walk the entries of one L2 slice from the subcluster containing off. */
static int walk_slice(struct qcow2_image *q, const uint8_t *p,
                      uint64_t slice_off, uint64_t off, uint64_t count,
                      struct qcow2_run *r)
{
  unsigned esz = 1u << q->entry_shift;
  uint64_t per_slice = q->slice_size >> q->entry_shift;
  uint64_t cidx = (off >> q->h.cluster_bits) & ((1ull << q->l2_bits) - 1);
  uint64_t first = cidx % per_slice;
  unsigned scs = q->ext_l2 ? 32 : 1;
  unsigned sc = (off >> q->sc_bits) & (scs - 1);
  uint64_t sc_size = 1ull << q->sc_bits;
  uint64_t guest = off & ~(sc_size - 1);
  uint64_t covered = 0;
  uint64_t want = count + (off - guest);

  for (uint64_t i = first; i < per_slice && covered < want; i++) {
    uint64_t e = load_be64(p + i * esz);
    uint64_t bm = q->ext_l2 ? load_be64(p + i * esz + 8) : 0;
    uint64_t eoff = slice_off + i * esz;
    for (; sc < scs && covered < want; sc++) {
      struct qcow2_run cur;
      int rc = classify(q, e, bm, sc, eoff, guest + covered, &cur);
      if (rc < 0) {
        if (!covered)
          return rc;
        goto done; /* report the good part first */
      }
      if (covered == 0) {
        *r = cur;
        r->cluster_start = guest & ~((uint64_t)q->cluster_size - 1);
      } else if (cur.type != r->type || cur.type == QCOW2_SC_COMPRESSED ||
                 (has_host(cur.type) && cur.host != r->host + covered))
        goto done;
      covered += cur.type == QCOW2_SC_COMPRESSED ? q->cluster_size : sc_size;
      if (cur.type == QCOW2_SC_COMPRESSED)
        goto done;
    }
    sc = 0;
  }
done:
  r->length = MIN(covered - (off - guest), count);
  if (r->type == QCOW2_SC_COMPRESSED)
    r->length = MIN(r->cluster_start + q->cluster_size - off, count);
  else if (has_host(r->type))
    r->host += off - guest;
  return 0;
}

static int map(struct qcow2_image *q, uint64_t off, uint64_t count,
               struct qcow2_run *r, bool nowait)
{
  uint64_t l2;
  int rc = l2_offset(q, off, &l2);
  if (rc < 0)
    return rc;
  if (!l2) { /* the whole L2 range is unallocated */
    uint64_t span = 1ull << (q->h.cluster_bits + q->l2_bits);
    memset(r, 0, sizeof *r);
    r->type = QCOW2_SC_UNALLOC_PLAIN;
    r->length = MIN(span - (off & (span - 1)), count);
    return 0;
  }
  uint64_t cidx = (off >> q->h.cluster_bits) & ((1ull << q->l2_bits) - 1);
  uint64_t slice_off =
      l2 + ((cidx << q->entry_shift) & ~(uint64_t)(q->slice_size - 1));
  struct qcow2_slice *s;
  const uint8_t *p;
  if (nowait)
    rc = qcow2_cache_try_get(q->cache, q->fd, slice_off, &s, &p);
  else
    rc = qcow2_cache_get(q->cache, q->fd, slice_off, q->slice_size,
                         q->file_size, &s, &p);
  if (rc == -EAGAIN && nowait)
    return rc;
  if (rc < 0) {
    log_error("qcow2: %s: cannot read the L2 table at %#" PRIx64
              " for guest offset %#" PRIx64,
              q->filename, slice_off, off);
    return rc;
  }
  rc = walk_slice(q, p, slice_off, off, count, r);
  qcow2_cache_put(q->cache, s);
  return rc;
}

int qcow2_map(struct qcow2_image *q, uint64_t off, uint64_t count,
              struct qcow2_run *r)
{
  return map(q, off, count, r, false);
}

int qcow2_map_nowait(struct qcow2_image *q, uint64_t off, uint64_t count,
                     struct qcow2_run *r)
{
  return map(q, off, count, r, true);
}

int qcow2_get_refcount(struct qcow2_image *q, uint64_t cluster,
                       uint64_t *refcount)
{
  unsigned order = q->h.refcount_order;
  unsigned block_bits = q->h.cluster_bits + 3 - order; /* entries/block */
  uint64_t ti = cluster >> block_bits;
  if (ti >= q->reftable_size) {
    *refcount = 0;
    return 0;
  }
  uint64_t rb = q->reftable[ti] & ~QCOW2_REFT_RESERVED;
  if (!rb) {
    *refcount = 0;
    return 0;
  }
  uint64_t idx = cluster & ((1ull << block_bits) - 1);
  uint64_t bit = idx << order; /* bit offset inside the block */
  uint64_t soff = rb + ((bit / 8) & ~(uint64_t)(q->slice_size - 1));
  struct qcow2_slice *s;
  const uint8_t *p;
  int rc = qcow2_cache_get(q->cache, q->fd, soff, q->slice_size, q->file_size,
                           &s, &p);
  if (rc < 0)
    return rc;
  uint64_t in = (bit / 8) & (q->slice_size - 1);
  uint64_t v;
  if (order < 3)
    v = (p[in] >> (bit & 7)) & ((1u << (1u << order)) - 1);
  else if (order == 3)
    v = p[in];
  else if (order == 4)
    v = load_be16(p + in);
  else if (order == 5)
    v = load_be32(p + in);
  else
    v = load_be64(p + in);
  qcow2_cache_put(q->cache, s);
  *refcount = v;
  return 0;
}
