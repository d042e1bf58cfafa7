/* Persistent dirty bitmaps: the bitmap directory, and the dirty state of
 * a guest range read through the bitmap table and its data clusters
 * (qcow2.txt "Bitmaps"). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2-int.h"
#include "util/checked.h"
#include "util/cleanup.h"
#include "util/endian.h"
#include "util/log.h"

#define BME_IN_USE         1u
#define BME_AUTO           2u
#define BME_EXTRA_COMPAT   4u
#define BME_TABLE_RESERVED 0xff000000000001feull

struct qcow2_bitmap {
  uint64_t table_offset;
  uint32_t table_size;
  uint32_t flags;
  unsigned gran_bits;
  char *name;
};

static int bm_fail(struct qcow2_image *q, uint64_t off, const char *why)
{
  log_error("qcow2: %s: bitmap directory entry at offset %#" PRIx64 ": %s",
            q->filename, off, why);
  return -EINVAL;
}

/* Validate one entry as QEMU's check_constraints does. */
static int check_entry(struct qcow2_image *q, uint64_t off,
                       const struct qcow2_bitmap *b, uint8_t type)
{
  if (type != 1)
    return bm_fail(q, off, "unknown bitmap type");
  if (b->gran_bits < 9 || b->gran_bits > 31)
    return bm_fail(q, off, "granularity out of range");
  if (b->flags & ~(BME_IN_USE | BME_AUTO | BME_EXTRA_COMPAT))
    return bm_fail(q, off, "reserved flags set");
  uint64_t bits = (q->h.size + (1ull << b->gran_bits) - 1) >> b->gran_bits;
  uint64_t need = (bits + (uint64_t)q->cluster_size * 8 - 1) /
                  ((uint64_t)q->cluster_size * 8);
  if (b->table_size < need)
    return bm_fail(q, off, "bitmap table too small for the image");
  if (b->table_size > 0x8000000u)
    return bm_fail(q, off, "bitmap table larger than the limit");
  if (!IS_ALIGNED(b->table_offset, q->cluster_size) ||
      b->table_offset < q->cluster_size ||
      !range_within(b->table_offset, (uint64_t)b->table_size * 8, q->file_size))
    return bm_fail(q, off, "bitmap table offset invalid");
  return 0;
}

static int parse_dir(struct qcow2_image *q, const uint8_t *d, uint64_t len)
{
  uint64_t pos = 0;
  for (size_t i = 0; i < q->nb_bitmaps; i++) {
    uint64_t eoff = q->h.bitmap_dir_offset + pos;
    if (len - pos < 24)
      return bm_fail(q, eoff, "bitmap directory truncated");
    const uint8_t *e = d + pos;
    struct qcow2_bitmap *b = &q->bitmaps[i];
    b->table_offset = load_be64(e);
    b->table_size = load_be32(e + 8);
    b->flags = load_be32(e + 12);
    b->gran_bits = e[17];
    uint32_t name_len = load_be16(e + 18), extra = load_be32(e + 20);
    if (name_len == 0 || name_len > 1023)
      return bm_fail(q, eoff, "bad name length");
    if (extra > len - pos - 24 || name_len > len - pos - 24 - extra)
      return bm_fail(q, eoff, "bitmap directory entry overruns the directory");
    int r = check_entry(q, eoff, b, e[16]);
    if (r < 0)
      return r;
    if (extra && !(b->flags & BME_EXTRA_COMPAT))
      b->flags |= BME_IN_USE; /* unknown extra data: cannot be trusted */
    if (!(b->name = strndup((const char *)e + 24 + extra, name_len)))
      return -ENOMEM;
    q->bitmap_infos[i].name = b->name;
    q->bitmap_infos[i].flags =
        (b->flags & BME_IN_USE ? QCOW2_BITMAP_IN_USE : 0) |
        (b->flags & BME_AUTO ? QCOW2_BITMAP_AUTO : 0);
    q->bitmap_infos[i].granularity = 1ull << b->gran_bits;
    pos = ROUND_UP(pos + 24 + extra + name_len, 8);
  }
  return 0;
}

int qcow2_bitmaps_read(struct qcow2_image *q)
{
  struct qcow2_header *h = &q->h;
  if (!h->nb_bitmaps)
    return 0;
  /* Without the autoclear bit the extension is stale: a program that did
   * not know bitmaps wrote the image (qcow2.txt "Bitmaps extension"). */
  if (!(h->autoclear & QCOW2_AUTOCLEAR_BITMAPS)) {
    log_warn("qcow2: %s: bitmaps extension is stale (autoclear bit clear); "
             "ignoring bitmaps",
             q->filename);
    return 0;
  }
  CLEANUP_FREE uint8_t *d = malloc(h->bitmap_dir_size);
  if (!d)
    return -ENOMEM;
  int r = qcow2_read_meta(q, q->fd, d, h->bitmap_dir_size, h->bitmap_dir_offset,
                          "bitmap directory");
  if (r < 0)
    return r;
  q->bitmaps = calloc(h->nb_bitmaps, sizeof *q->bitmaps);
  q->bitmap_infos = calloc(h->nb_bitmaps, sizeof *q->bitmap_infos);
  if (!q->bitmaps || !q->bitmap_infos)
    return -ENOMEM;
  q->nb_bitmaps = h->nb_bitmaps;
  return parse_dir(q, d, h->bitmap_dir_size);
}

void qcow2_bitmaps_free(struct qcow2_image *q)
{
  for (size_t i = 0; q->bitmaps && i < q->nb_bitmaps; i++)
    free(q->bitmaps[i].name);
  free(q->bitmaps);
  free(q->bitmap_infos);
}

/* Read the bitmap table entry for data cluster idx. */
static int table_entry(struct qcow2_image *q, const struct qcow2_bitmap *b,
                       uint64_t idx, uint64_t *out)
{
  uint64_t pos = b->table_offset + idx * 8;
  uint64_t soff = pos & ~(uint64_t)(q->slice_size - 1);
  struct qcow2_slice *s;
  const uint8_t *p;
  int r = qcow2_cache_get(q->cache, q->fd, soff, q->slice_size, q->file_size,
                          &s, &p);
  if (r < 0)
    return r;
  *out = load_be64(p + (pos - soff));
  qcow2_cache_put(q->cache, s);
  uint64_t data = *out & QCOW2_OFFSET_MASK;
  if ((*out & BME_TABLE_RESERVED) ||
      (data &&
       (!IS_ALIGNED(data, q->cluster_size) || data < q->cluster_size))) {
    log_error("qcow2: %s: corrupt bitmap table entry at offset %#" PRIx64,
              q->filename, pos);
    return -EIO;
  }
  return 0;
}

/* Count the bits equal to the first one, from bit `bit` of the data
 * cluster at data, up to max bits. */
static int scan_bits(struct qcow2_image *q, uint64_t data, uint64_t bit,
                     uint64_t max, uint64_t *run, bool *val)
{
  uint64_t soff = data + ((bit / 8) & ~(uint64_t)(q->slice_size - 1));
  struct qcow2_slice *s;
  const uint8_t *p;
  int r = qcow2_cache_get(q->cache, q->fd, soff, q->slice_size, q->file_size,
                          &s, &p);
  if (r < 0)
    return r;
  uint64_t base = (soff - data) * 8, end = base + (uint64_t)q->slice_size * 8;
  end = MIN(end, bit + max);
  *val = (p[(bit - base) / 8] >> (bit % 8)) & 1;
  uint64_t i = bit;
  while (i < end && (bool)((p[(i - base) / 8] >> (i % 8)) & 1) == *val)
    i++;
  qcow2_cache_put(q->cache, s);
  *run = i - bit;
  return 0;
}

int qcow2_bitmap_status(struct qcow2_image *img, size_t idx, uint64_t offset,
                        uint64_t count, uint64_t *len, bool *dirty)
{
  if (idx >= img->nb_bitmaps || (img->bitmaps[idx].flags & BME_IN_USE))
    return -EINVAL;
  const struct qcow2_bitmap *b = &img->bitmaps[idx];
  uint64_t bits_per_cluster = (uint64_t)img->cluster_size * 8;
  uint64_t bit = offset >> b->gran_bits;
  uint64_t last = (offset + count - 1) >> b->gran_bits;
  uint64_t ti = bit / bits_per_cluster, e;
  if (ti >= b->table_size)
    return -EIO;
  int r = table_entry(img, b, ti, &e);
  if (r < 0)
    return r;
  uint64_t in = bit % bits_per_cluster;
  uint64_t max = MIN(bits_per_cluster - in, last - bit + 1), run;
  if (!(e & QCOW2_OFFSET_MASK)) { /* bit 0: all ones, else all zeroes */
    *dirty = e & 1;
    run = max;
  } else if ((r = scan_bits(img, e & QCOW2_OFFSET_MASK, in, max, &run, dirty)) <
             0)
    return r;
  uint64_t end = (bit + run) << b->gran_bits;
  *len = MIN(end - offset, count);
  return 0;
}
