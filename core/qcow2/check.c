/* Checking a qcow2 image's refcounts against the references its metadata
 * makes (qemu-img check), and repairing leaks, too-low refcounts and
 * COPIED flags (qcow2.txt "Host cluster management", "Cluster mapping"). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qcow2-int.h"
#include "util/endian.h"
#include "util/log.h"

/* Past this many clusters a reference is treated as out of range rather
 * than grown into (a corrupt offset must not make us allocate TiBs). */
#define CHK_MAX_CLUSTERS (1ull << 28)

struct chk {
  struct qcow2_image *q;
  int fd; /* read-write when repairing */
  int fix;
  uint32_t cs;
  unsigned order;
  uint64_t nb;   /* clusters tracked */
  uint64_t *ref; /* references counted */
  uint64_t *st;  /* stored refcounts */
  uint64_t next; /* next contiguous data offset (fragmentation) */
  struct qcow2_check_result *res;
};

static int chk_read(struct chk *c, void *buf, size_t len, uint64_t off)
{
  if (off >= c->q->file_size) { /* reported by chk_inc; reads as zeroes */
    memset(buf, 0, len);
    return 0;
  }
  int r = qcow2_pread_full(c->fd, buf, len, off);
  if (r < 0)
    c->res->check_errors++;
  return r;
}

static int chk_grow(struct chk *c, uint64_t n)
{
  if (n <= c->nb)
    return 0;
  uint64_t *a = realloc(c->ref, n * sizeof *a);
  if (!a)
    return -ENOMEM;
  memset(a + c->nb, 0, (n - c->nb) * sizeof *a);
  c->ref = a;
  uint64_t *b = realloc(c->st, n * sizeof *b);
  if (!b)
    return -ENOMEM;
  memset(b + c->nb, 0, (n - c->nb) * sizeof *b);
  c->st = b;
  c->nb = n;
  return 0;
}

/* Count one reference to every cluster of [off, off+len). */
static int chk_inc(struct chk *c, uint64_t off, uint64_t len)
{
  if (!len)
    return 0;
  uint64_t first = off / c->cs, last = (off + len - 1) / c->cs;
  /* A reference a whole cluster or more past the end of the file points
   * at nothing: a corruption, not counted (nor grown into). */
  if (off + len < off || off + len >= c->q->file_size + c->cs ||
      last >= CHK_MAX_CLUSTERS) {
    fprintf(stderr,
            "ERROR: counting reference for region exceeding the end of "
            "the file by one cluster or more: offset 0x%" PRIx64
            " size 0x%" PRIx64 "\n",
            off, len);
    c->res->corruptions++;
    return 0;
  }
  int r = chk_grow(c, last + 1);
  for (uint64_t i = first; !r && i <= last; i++)
    c->ref[i]++;
  return r;
}

/* A table or cluster offset must be cluster aligned; a corruption if
 * not (its references are then not counted). */
static bool chk_aligned(struct chk *c, uint64_t off, const char *fmt)
{
  if (!(off & (c->cs - 1)))
    return true;
  fprintf(stderr, fmt, off);
  c->res->corruptions++;
  return false;
}

/* The references of one L2 entry; active: of the image's own L1. */
static int chk_l2_entry(struct chk *c, uint64_t e, bool active)
{
  struct qcow2_image *q = c->q;
  unsigned cb = q->h.cluster_bits;
  if (e & QCOW2_OFLAG_COMPRESSED) {
    /* qcow2.txt "Compressed Clusters Descriptor". */
    unsigned x = 62 - (cb - 8);
    uint64_t host = e & ((1ull << x) - 1);
    uint64_t nsec = ((e >> x) & ((1ull << (cb - 8)) - 1)) + 1;
    /* Fixed by chk_copied_l2 when repairing. */
    if ((e & QCOW2_OFLAG_COPIED) && !(c->fix & QCOW2_FIX_ERRORS)) {
      fprintf(stderr,
              "ERROR: coffset=0x%" PRIx64 ": copied flag must never be set "
              "for compressed clusters\n",
              host);
      c->res->corruptions++;
    }
    if (active) {
      c->res->allocated_clusters++;
      c->res->compressed_clusters++;
      c->res->fragmented_clusters++; /* by nature, as QEMU counts them */
    }
    return chk_inc(c, host & ~511ull, nsec * 512);
  }
  if (e & QCOW2_L2_STD_RESERVED) {
    fprintf(stderr,
            "ERROR found l2 entry with reserved bits set: %" PRIx64 "\n", e);
    c->res->corruptions++;
  }
  uint64_t off = e & QCOW2_OFFSET_MASK;
  bool ext = q->data_fd != q->fd;
  /* Offset 0 is unallocated, except in an external data file where
   * COPIED tells an allocation at 0 apart (every such cluster has it). */
  if (!off && !(ext && (e & QCOW2_OFLAG_COPIED)))
    return 0;
  if (!chk_aligned(c, off,
                   "ERROR offset=%" PRIx64 ": Data cluster is not properly "
                   "aligned; L2 entry corrupted.\n"))
    return 0;
  if (active) {
    c->res->allocated_clusters++;
    if (c->next && off != c->next)
      c->res->fragmented_clusters++;
    c->next = off + c->cs;
  }
  /* Clusters of an external data file have no refcounts. */
  if (ext)
    return 0;
  return chk_inc(c, off, c->cs);
}

/* A table must lie within the file before we allocate and read it. */
static bool chk_table_ok(struct chk *c, uint64_t off, uint64_t bytes,
                         const char *what)
{
  if (off <= c->q->file_size && bytes <= c->q->file_size - off)
    return true;
  fprintf(stderr,
          "ERROR %s at offset 0x%" PRIx64 " (%" PRIu64 " bytes) is "
          "beyond the end of the file\n",
          what, off, bytes);
  c->res->corruptions++;
  return false;
}

static int chk_l1(struct chk *c, uint64_t l1_off, uint32_t l1_size, bool active)
{
  if (!chk_table_ok(c, l1_off, (uint64_t)l1_size * 8, "L1 table"))
    return 0;
  size_t esz = (size_t)1 << c->q->entry_shift;
  uint64_t *l1 = calloc(l1_size ? l1_size : 1, 8);
  uint8_t *l2 = malloc(c->cs);
  int r = l1 && l2 ? 0 : -ENOMEM;
  if (!r)
    r = chk_inc(c, l1_off, (uint64_t)l1_size * 8);
  if (!r && l1_size)
    r = chk_read(c, l1, (size_t)l1_size * 8, l1_off);
  for (uint32_t i = 0; !r && i < l1_size; i++) {
    if (load_be64(&l1[i]) & QCOW2_L1_RESERVED) {
      fprintf(stderr,
              "ERROR found L1 entry with reserved bits set: %" PRIx64 "\n",
              load_be64(&l1[i]));
      c->res->corruptions++;
    }
    uint64_t off = load_be64(&l1[i]) & QCOW2_OFFSET_MASK;
    if (!off || !chk_aligned(c, off,
                             "ERROR l2_offset=%" PRIx64 ": Table is not "
                             "cluster aligned; L1 entry corrupted\n"))
      continue;
    if ((r = chk_inc(c, off, c->cs)) < 0 ||
        (r = chk_read(c, l2, c->cs, off)) < 0)
      break;
    c->next = 0; /* QEMU measures fragmentation within each L2 table */
    for (size_t j = 0; !r && j < c->cs / esz; j++)
      r = chk_l2_entry(c, load_be64(l2 + j * esz), active);
  }
  free(l1);
  free(l2);
  return r;
}

/* The snapshot table and every snapshot's tables (qcow2.txt
 * "Snapshots"). */
static int chk_snapshots(struct chk *c)
{
  const struct qcow2_header *h = &c->q->h;
  uint64_t pos = h->snapshots_offset;
  for (uint32_t i = 0; i < h->nb_snapshots; i++) {
    uint8_t e[40];
    int r = chk_read(c, e, sizeof e, pos);
    if (r < 0)
      return r;
    uint64_t len =
        40 + load_be32(e + 36) + load_be16(e + 12) + load_be16(e + 14);
    len = (len + 7) & ~7ull;
    if ((r = chk_l1(c, load_be64(e), load_be32(e + 8), false)) < 0)
      return r;
    pos += len;
  }
  return chk_inc(c, h->snapshots_offset, pos - h->snapshots_offset);
}

/* The bitmap directory and each bitmap's table and data clusters
 * (qcow2.txt "Bitmaps"). */
static int chk_bitmaps(struct chk *c)
{
  const struct qcow2_header *h = &c->q->h;
  if (!h->nb_bitmaps || !h->bitmap_dir_offset)
    return 0;
  uint8_t *dir = malloc(h->bitmap_dir_size);
  int r = dir ? 0 : -ENOMEM;
  if (!r)
    r = chk_read(c, dir, h->bitmap_dir_size, h->bitmap_dir_offset);
  if (!r)
    r = chk_inc(c, h->bitmap_dir_offset, h->bitmap_dir_size);
  uint64_t pos = 0;
  for (uint32_t i = 0; !r && i < h->nb_bitmaps; i++) {
    if (pos + 24 > h->bitmap_dir_size) {
      fprintf(stderr, "ERROR bitmap directory entry %u is truncated\n", i);
      c->res->corruptions++;
      break;
    }
    const uint8_t *e = dir + pos;
    uint64_t toff = load_be64(e);
    uint32_t tsize = load_be32(e + 8);
    pos += (24 + load_be32(e + 20) + load_be16(e + 18) + 7) & ~7ull;
    if (!chk_table_ok(c, toff, (uint64_t)tsize * 8, "bitmap table"))
      continue;
    uint64_t *t = calloc(tsize ? tsize : 1, 8);
    if (!t) {
      r = -ENOMEM;
      break;
    }
    r = chk_inc(c, toff, (uint64_t)tsize * 8);
    if (!r && tsize)
      r = chk_read(c, t, (size_t)tsize * 8, toff);
    for (uint32_t j = 0; !r && j < tsize; j++) {
      uint64_t off = load_be64(&t[j]) & QCOW2_OFFSET_MASK;
      if (off)
        r = chk_inc(c, off, c->cs);
    }
    free(t);
  }
  free(dir);
  return r;
}

/* Refcount entry idx of a refcount block (sub-byte widths LSB first). */
static uint64_t rb_get(const uint8_t *b, uint64_t idx, unsigned order)
{
  unsigned bits = 1u << order;
  if (bits < 8)
    return (b[idx * bits / 8] >> (idx * bits % 8)) & ((1u << bits) - 1);
  uint64_t v = 0;
  for (unsigned k = 0; k < bits / 8; k++)
    v = v << 8 | b[idx * (bits / 8) + k];
  return v;
}

static void rb_put(uint8_t *b, uint64_t idx, unsigned order, uint64_t v)
{
  unsigned bits = 1u << order;
  if (bits < 8) {
    unsigned sh = idx * bits % 8, m = ((1u << bits) - 1) << sh;
    b[idx * bits / 8] = (uint8_t)((b[idx * bits / 8] & ~m) | (v << sh & m));
    return;
  }
  for (unsigned k = bits / 8; k-- > 0; v >>= 8)
    b[idx * (bits / 8) + k] = (uint8_t)v;
}

/* The refcount table, its blocks, and the refcounts they store. */
static int chk_refcounts(struct chk *c)
{
  struct qcow2_image *q = c->q;
  uint64_t per = (uint64_t)c->cs * 8 >> c->order;
  int r = chk_inc(c, q->h.reftable_offset,
                  (uint64_t)q->h.reftable_clusters * c->cs);
  uint8_t *b = malloc(c->cs);
  if (!b)
    return -ENOMEM;
  for (uint32_t i = 0; !r && i < q->reftable_size; i++) {
    uint64_t off = q->reftable[i] & ~QCOW2_REFT_RESERVED;
    if (q->reftable[i] & QCOW2_REFT_RESERVED) {
      fprintf(stderr, "ERROR refcount table entry %u has reserved bits set\n",
              i);
      c->res->corruptions++;
      continue;
    }
    if (off && off >= q->file_size) {
      fprintf(stderr, "ERROR refcount block %u is outside image\n", i);
      c->res->corruptions++;
      continue;
    }
    if (!off || !chk_aligned(c, off,
                             "ERROR refcount block at %#" PRIx64 " is not "
                             "cluster aligned; refcount table entry "
                             "corrupted\n"))
      continue;
    if ((r = chk_inc(c, off, c->cs)) < 0 ||
        (r = chk_read(c, b, c->cs, off)) < 0)
      break;
    for (uint64_t j = 0; j < per && i * per + j < c->nb; j++)
      c->st[i * per + j] = rb_get(b, j, c->order);
  }
  free(b);
  return r;
}

static int chk_set_refcount(struct chk *c, uint64_t cl, uint64_t v);

/* -r all: refcount block idx is missing (a zero reftable entry).  A new
 * one is appended to the file; its own refcount goes into itself when it
 * covers itself, else into its existing block, and all of that is on
 * disk before the reftable entry that references it is written. */
static int chk_new_refblock(struct chk *c, uint64_t idx)
{
  struct qcow2_image *q = c->q;
  uint64_t per = (uint64_t)c->cs * 8 >> c->order;
  if (!(c->fix & QCOW2_FIX_ERRORS) || idx >= q->reftable_size ||
      q->reftable[idx])
    return -ENOSPC;
  uint64_t off = (q->file_size + c->cs - 1) / c->cs * c->cs, b = off / c->cs;
  if (b >= CHK_MAX_CLUSTERS || chk_grow(c, b + 1) < 0)
    return -ENOSPC;
  uint8_t *blk = calloc(1, c->cs);
  if (!blk)
    return -ENOMEM;
  bool self = b / per == idx;
  if (self)
    rb_put(blk, b % per, c->order, 1);
  int r = 0;
  if (pwrite(c->fd, blk, c->cs, (off_t)off) != (ssize_t)c->cs)
    r = errno ? -errno : -EIO;
  free(blk);
  if (!r && fdatasync(c->fd) < 0)
    r = -errno;
  if (r < 0)
    return r;
  q->file_size = off + c->cs;
  if (!self && (r = chk_set_refcount(c, b, 1)) < 0)
    return r;
  uint8_t e[8];
  store_be64(e, off);
  if (fdatasync(c->fd) < 0 ||
      pwrite(c->fd, e, 8, (off_t)(q->h.reftable_offset + idx * 8)) != 8)
    return errno ? -errno : -EIO;
  q->reftable[idx] = off;
  c->st[b] = 1;
  c->ref[b]++;
  fprintf(stderr, "Allocated refcount block %" PRIu64 " at 0x%" PRIx64 "\n",
          idx, off);
  return 0;
}

static int chk_set_refcount(struct chk *c, uint64_t cl, uint64_t v)
{
  uint64_t per = (uint64_t)c->cs * 8 >> c->order;
  uint64_t idx = cl / per;
  if (idx < c->q->reftable_size && !c->q->reftable[idx]) {
    int r = chk_new_refblock(c, idx);
    if (r < 0)
      return r;
  }
  if (idx >= c->q->reftable_size || !(c->q->reftable[idx] & ~0x1ffull) ||
      (c->q->reftable[idx] & QCOW2_REFT_RESERVED) ||
      (c->q->reftable[idx] & (c->cs - 1)) ||
      c->q->reftable[idx] >= c->q->file_size)
    return -ENOSPC; /* no (valid) refcount block to hold it */
  if (c->order < 6 && v >> (1u << c->order))
    return -ERANGE;
  uint64_t off = c->q->reftable[idx] & ~QCOW2_REFT_RESERVED;
  unsigned bits = 1u << c->order;
  uint64_t j = cl % per, byte = j * bits / 8;
  uint8_t buf[8];
  size_t n = bits < 8 ? 1 : bits / 8;
  int r = chk_read(c, buf, n, off + byte);
  if (r < 0)
    return r;
  /* Sub-byte entries: index within the one byte read. */
  rb_put(buf, bits < 8 ? j % (8 / bits) : 0, c->order, v);
  if (pwrite(c->fd, buf, n, (off_t)(off + byte)) != (ssize_t)n)
    return -errno ? -errno : -EIO;
  c->st[cl] = v;
  return 0;
}

/* Compare stored refcounts with references; fix leaks (QCOW2_FIX_LEAKS)
 * and too-low refcounts (QCOW2_FIX_ERRORS) in place. */
static int chk_compare(struct chk *c)
{
  struct qcow2_check_result *res = c->res;
  for (uint64_t i = 0; i < c->nb; i++) {
    uint64_t s = c->st[i], n = c->ref[i];
    if (s != n) {
      bool leak = s > n;
      bool fix = c->fix & (leak ? QCOW2_FIX_LEAKS : QCOW2_FIX_ERRORS);
      /* As qemu-img: the finding, then the repair of it. */
      for (int k = 0; k <= fix; k++)
        fprintf(stderr,
                "%s cluster %" PRIu64 " refcount=%" PRIu64 " reference=%" PRIu64
                "\n",
                k      ? "Repairing"
                : leak ? "Leaked"
                       : "ERROR",
                i, s, n);
      int r = fix ? chk_set_refcount(c, i, n) : -1;
      if (r == 0)
        (*(leak ? &res->leaks_fixed : &res->corruptions_fixed))++;
      else {
        if (fix)
          fprintf(stderr, "ERROR could not fix cluster %" PRIu64 ": %s\n", i,
                  strerror(-r));
        (*(leak ? &res->leaks : &res->corruptions))++;
      }
    }
    if (s || n) /* the last cluster stored or referenced */
      res->image_end_offset = (i + 1) * c->cs;
  }
  return 0;
}

/* COPIED must be set exactly when the refcount is 1 (qcow2.txt "Cluster
 * mapping"), for the active L1 and L2 tables; fixed after refcounts. */
static int chk_copied_entry(struct chk *c, uint64_t *e, uint64_t refc,
                            const char *what, uint32_t l1_index)
{
  bool want = refc == 1, has = *e & QCOW2_OFLAG_COPIED;
  if (want == has)
    return 0;
  if (l1_index != UINT32_MAX)
    fprintf(stderr,
            "%s OFLAG_COPIED L2 cluster: l1_index=%u "
            "l1_entry=%" PRIx64 " refcount=%" PRIu64 "\n",
            c->fix & QCOW2_FIX_ERRORS ? "Repairing" : "ERROR", l1_index, *e,
            refc);
  else
    fprintf(stderr,
            "%s OFLAG_COPIED %s: l2_entry=%" PRIx64 " refcount=%" PRIu64 "\n",
            c->fix & QCOW2_FIX_ERRORS ? "Repairing" : "ERROR", what, *e, refc);
  if (!(c->fix & QCOW2_FIX_ERRORS)) {
    c->res->corruptions++;
    return 0;
  }
  *e = want ? *e | QCOW2_OFLAG_COPIED : *e & ~QCOW2_OFLAG_COPIED;
  c->res->corruptions_fixed++;
  return 1;
}

static uint64_t chk_st(struct chk *c, uint64_t off)
{
  return off / c->cs < c->nb ? c->st[off / c->cs] : 0;
}

static int chk_write_entry(struct chk *c, uint64_t e, uint64_t off)
{
  uint8_t b[8];
  store_be64(b, e);
  if (pwrite(c->fd, b, 8, (off_t)off) != 8)
    return errno ? -errno : -EIO;
  return 0;
}

static int chk_copied_l2(struct chk *c, uint64_t l2off, uint8_t *l2)
{
  size_t esz = (size_t)1 << c->q->entry_shift;
  bool ext = c->q->data_fd != c->q->fd;
  int r = chk_read(c, l2, c->cs, l2off);
  for (size_t j = 0; !r && j < c->cs / esz; j++) {
    uint64_t e = load_be64(l2 + j * esz);
    uint64_t off = e & QCOW2_OFFSET_MASK;
    if ((e & QCOW2_OFLAG_COMPRESSED) && (e & QCOW2_OFLAG_COPIED) &&
        (c->fix & QCOW2_FIX_ERRORS)) {
      fprintf(stderr,
              "Repairing compressed cluster with the copied flag: "
              "l2_entry=%" PRIx64 "\n",
              e);
      c->res->corruptions_fixed++;
      r = chk_write_entry(c, e & ~QCOW2_OFLAG_COPIED, l2off + j * esz);
      continue;
    }
    if ((e & QCOW2_OFLAG_COMPRESSED) || !off)
      continue;
    /* External data clusters are counted as owned by this image. */
    uint64_t refc = ext ? 1 : chk_st(c, off);
    if (chk_copied_entry(c, &e, refc, "data cluster", UINT32_MAX) > 0)
      r = chk_write_entry(c, e, l2off + j * esz);
  }
  return r;
}

static int chk_copied(struct chk *c)
{
  struct qcow2_image *q = c->q;
  uint32_t n = q->h.l1_size;
  uint64_t *l1 = calloc(n ? n : 1, 8);
  uint8_t *l2 = malloc(c->cs);
  int r = l1 && l2 ? 0 : -ENOMEM;
  if (!r && n)
    r = chk_read(c, l1, (size_t)n * 8, q->h.l1_offset);
  for (uint32_t i = 0; !r && i < n; i++) {
    uint64_t e = load_be64(&l1[i]), off = e & QCOW2_OFFSET_MASK;
    if (!off)
      continue;
    if (chk_copied_entry(c, &e, chk_st(c, off), NULL, i) > 0)
      r = chk_write_entry(c, e, q->h.l1_offset + (uint64_t)i * 8);
    if (!r)
      r = chk_copied_l2(c, off, l2);
  }
  free(l1);
  free(l2);
  return r;
}

/* A refcount block must be used once, by the refcount table alone
 * (shared, its counts could not be updated on their own). */
static void chk_refblocks_once(struct chk *c)
{
  struct qcow2_image *q = c->q;
  for (uint32_t i = 0; i < q->reftable_size; i++) {
    uint64_t e = q->reftable[i], cl = e / c->cs;
    if (!e || (e & QCOW2_REFT_RESERVED) || e >= q->file_size || cl >= c->nb)
      continue;
    if (c->ref[cl] != 1) {
      fprintf(stderr, "ERROR refcount block %u refcount=%" PRIu64 "\n", i,
              c->ref[cl]);
      c->res->corruptions++;
    }
  }
}

/* After a full repair left nothing wrong, the refcounts are consistent
 * again: clear the dirty bit (qcow2.txt "incompatible features" bit 0),
 * only once everything else is on disk. */
static int chk_clear_dirty(struct chk *c)
{
  const struct qcow2_header *h = &c->q->h;
  struct qcow2_check_result *res = c->res;
  if (c->fix != (QCOW2_FIX_LEAKS | QCOW2_FIX_ERRORS) ||
      !(h->incompat & QCOW2_INCOMPAT_DIRTY) || res->corruptions || res->leaks ||
      res->check_errors)
    return 0;
  int r = chk_write_entry(c, h->incompat & ~QCOW2_INCOMPAT_DIRTY, 72);
  if (!r && fsync(c->fd) < 0)
    r = -errno;
  return r;
}

static int chk_run(struct chk *c)
{
  struct qcow2_image *q = c->q;
  int r = chk_grow(c, (q->file_size + c->cs - 1) / c->cs);
  if (!r)
    r = chk_inc(c, 0, c->cs); /* the header */
  if (!r)
    r = chk_l1(c, q->h.l1_offset, q->h.l1_size, true);
  if (!r)
    r = chk_snapshots(c);
  if (!r)
    r = chk_bitmaps(c);
  if (!r)
    r = chk_refcounts(c);
  if (!r)
    r = chk_compare(c);
  if (!r)
    chk_refblocks_once(c);
  /* References are fixed only after the refcounts they rely on are on
   * disk (qcow2.txt: refcounts first, then references). */
  if (!r && c->fix && fdatasync(c->fd) < 0)
    r = -errno;
  if (!r)
    r = chk_copied(c);
  if (!r && c->fix && fsync(c->fd) < 0)
    r = -errno;
  if (!r)
    r = chk_clear_dirty(c);
  return r;
}

int qcow2_check(const char *path, int fix, struct qcow2_check_result *res)
{
  memset(res, 0, sizeof *res);
  struct qcow2_image *q;
  int r = qcow2_image_open_layer(path, "qcow2", 0, NULL, NULL, &q);
  if (r < 0)
    return r;
  struct chk c = {.q = q,
                  .fd = q->fd,
                  .fix = fix,
                  .cs = q->cluster_size,
                  .order = q->h.refcount_order,
                  .res = res};
  if (fix && (c.fd = open(path, O_RDWR | O_CLOEXEC)) < 0) {
    r = -errno;
    log_error("qcow2: cannot open %s for repair: %s", path, strerror(-r));
    qcow2_image_free(q);
    return r;
  }
  res->total_clusters = (q->size + c.cs - 1) / c.cs;
  r = chk_run(&c);
  if (fix)
    close(c.fd);
  free(c.ref);
  free(c.st);
  qcow2_image_free(q);
  return r;
}
