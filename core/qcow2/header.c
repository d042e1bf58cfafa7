/* Reading and validating the qcow2 header and its extensions
 * (qcow2.txt "Header" and "Header extensions"). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2-int.h"
#include "util/checked.h"
#include "util/cleanup.h"
#include "util/endian.h"
#include "util/log.h"

int qcow2_read_meta(struct qcow2_image *q, int fd, void *buf, size_t len,
                    uint64_t off, const char *what)
{
  uint64_t fsize = fd == q->fd ? q->file_size : q->data_size;
  if (!range_within(off, len, fsize)) {
    log_error("qcow2: %s: %s at offset %#" PRIx64 " (%zu bytes) is past the "
              "end of the file",
              q->filename, what, off, len);
    return -EIO;
  }
  int r = qcow2_pread_full(fd, buf, len, off);
  if (r < 0)
    log_error("qcow2: %s: reading %s at offset %#" PRIx64 ": %s", q->filename,
              what, off, strerror(-r));
  return r;
}

static int hdr_fail(struct qcow2_image *q, const char *why)
{
  log_error("qcow2: %s: %s", q->filename, why);
  return -EINVAL;
}

/* A string extension or the backing file name: not NUL-terminated on
 * disk; an embedded NUL would make the name ambiguous. */
static int dup_name(struct qcow2_image *q, const uint8_t *p, size_t len,
                    char **out, const char *what)
{
  if (memchr(p, 0, len)) {
    log_error("qcow2: %s: %s contains a NUL byte", q->filename, what);
    return -EINVAL;
  }
  char *s = strndup((const char *)p, len);
  if (!s)
    return -ENOMEM;
  free(*out);
  *out = s;
  return 0;
}

static int ext_feature_table(struct qcow2_image *q, const uint8_t *p,
                             uint32_t len)
{
  struct qcow2_header *h = &q->h;
  size_t n = len / 48;
  h->features = calloc(n ? n : 1, sizeof *h->features);
  if (!h->features)
    return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    h->features[i].type = p[i * 48];
    h->features[i].bit = p[i * 48 + 1];
    memcpy(h->features[i].name, p + i * 48 + 2, 46);
    h->features[i].name[46] = 0;
  }
  h->nb_features = n;
  return 0;
}

static int ext_bitmaps(struct qcow2_image *q, const uint8_t *p, uint32_t len)
{
  struct qcow2_header *h = &q->h;
  if (len != 24)
    return hdr_fail(q, "bitmaps extension has a bad length");
  h->nb_bitmaps = load_be32(p);
  h->bitmap_dir_size = load_be64(p + 8);
  h->bitmap_dir_offset = load_be64(p + 16);
  if (load_be32(p + 4) != 0)
    return hdr_fail(q, "bitmaps extension: reserved field is not zero");
  if (h->nb_bitmaps == 0 || h->nb_bitmaps > QCOW2_MAX_BITMAPS)
    return hdr_fail(q, "bitmaps extension: bad number of bitmaps");
  if (h->bitmap_dir_size == 0 ||
      h->bitmap_dir_size > QCOW2_MAX_BITMAP_DIR_BYTES)
    return hdr_fail(q, "bitmaps extension: bad bitmap directory size");
  if (!IS_ALIGNED(h->bitmap_dir_offset, q->cluster_size) ||
      !h->bitmap_dir_offset)
    return hdr_fail(q, "bitmaps extension: unaligned bitmap directory");
  return 0;
}

/* One extension; seen[] catches duplicates ("each at most once"). */
static int ext_one(struct qcow2_image *q, uint32_t type, const uint8_t *p,
                   uint32_t len, unsigned *seen)
{
  struct qcow2_header *h = &q->h;
  static const uint32_t known[] = {QCOW2_EXT_BACKING_FORMAT,
                                   QCOW2_EXT_FEATURE_TABLE, QCOW2_EXT_BITMAPS,
                                   QCOW2_EXT_CRYPTO, QCOW2_EXT_DATA_FILE};
  for (unsigned i = 0; i < ARRAY_SIZE(known); i++) {
    if (known[i] != type)
      continue;
    if (seen[i]++) {
      log_error("qcow2: %s: header extension %#x appears twice", q->filename,
                type);
      return -EINVAL;
    }
  }
  switch (type) {
  case QCOW2_EXT_BACKING_FORMAT:
    if (len > 15)
      return hdr_fail(q, "backing format name too long");
    return dup_name(q, p, len, &h->backing_format, "backing format name");
  case QCOW2_EXT_FEATURE_TABLE:
    return ext_feature_table(q, p, len);
  case QCOW2_EXT_BITMAPS:
    return ext_bitmaps(q, p, len);
  case QCOW2_EXT_CRYPTO:
    h->has_crypto_ext = true;
    return 0;
  case QCOW2_EXT_DATA_FILE:
    if (len == 0)
      return hdr_fail(q, "empty external data file name");
    return dup_name(q, p, len, &h->data_file, "external data file name");
  default: /* unknown: ignored when reading */
    return 0;
  }
}

static int read_extensions(struct qcow2_image *q, const uint8_t *buf)
{
  struct qcow2_header *h = &q->h;
  uint64_t end = h->backing_offset ? h->backing_offset : q->cluster_size;
  uint64_t off = h->header_length;
  unsigned seen[5] = {0};
  while (off + 8 <= end) {
    uint32_t type = load_be32(buf + off), len = load_be32(buf + off + 4);
    off += 8;
    if (type == QCOW2_EXT_END)
      return 0;
    if (len > end - off) {
      log_error("qcow2: %s: header extension %#x (length %u) overruns the "
                "header",
                q->filename, type, len);
      return -EINVAL;
    }
    int r = ext_one(q, type, buf + off, len, seen);
    if (r < 0)
      return r;
    off += ROUND_UP((uint64_t)len, 8);
  }
  /* A v2 header may end without an end marker. */
  if (h->version >= 3 && off < end)
    return hdr_fail(q, "header extensions are not terminated");
  return 0;
}

static const char *feature_name(const struct qcow2_header *h, unsigned bit)
{
  for (size_t i = 0; i < h->nb_features; i++)
    if (h->features[i].type == 0 && h->features[i].bit == bit)
      return h->features[i].name;
  return NULL;
}

/* Unknown incompatible bits refuse to open, named from the feature name
 * table (qcow2.txt "Feature name table"). */
static int check_features(struct qcow2_image *q)
{
  struct qcow2_header *h = &q->h;
  uint64_t unknown = h->incompat & ~QCOW2_INCOMPAT_KNOWN;
  for (unsigned bit = 0; bit < 64; bit++) {
    if (!(unknown & (1ull << bit)))
      continue;
    const char *n = feature_name(h, bit);
    log_error("qcow2: %s: unsupported incompatible feature bit %u%s%s%s",
              q->filename, bit, n ? " (" : "", n ? n : "", n ? ")" : "");
  }
  if (unknown)
    return -ENOTSUP;
  if (h->crypt_method == 1 || h->crypt_method == 2) {
    log_error("qcow2: %s: encrypted images (%s) are not supported; refusing "
              "to serve ciphertext",
              q->filename, h->crypt_method == 1 ? "legacy AES" : "LUKS");
    return -ENOTSUP;
  }
  if (h->crypt_method != 0)
    return hdr_fail(q, "unknown encryption method");
  if (h->has_crypto_ext)
    return hdr_fail(q, "encryption header extension in an unencrypted image");
  if (!!(h->incompat & QCOW2_INCOMPAT_COMPRESSION) !=
      (h->compression_type != 0))
    return hdr_fail(q, "compression type feature bit and field disagree");
  if (h->compression_type > 1)
    return hdr_fail(q, "unknown compression type");
  if ((h->incompat & QCOW2_INCOMPAT_EXTL2) && h->cluster_bits < 14)
    return hdr_fail(q, "extended L2 entries need clusters of 16 KiB or more");
  if ((h->incompat & QCOW2_INCOMPAT_DATA_FILE) && !h->data_file)
    return hdr_fail(q, "external data file feature set but no file name");
  if (!(h->incompat & QCOW2_INCOMPAT_DATA_FILE) && h->data_file)
    return hdr_fail(q, "data file name given without the data file feature");
  if ((h->autoclear & QCOW2_AUTOCLEAR_DATA_FILE_RAW) &&
      !(h->incompat & QCOW2_INCOMPAT_DATA_FILE))
    return hdr_fail(q, "raw external data bit set without a data file");
  if (h->incompat & QCOW2_INCOMPAT_CORRUPT)
    log_warn("qcow2: %s: image is marked corrupt; serving it read-only",
             q->filename);
  return 0;
}

static void parse_fixed(struct qcow2_header *h, const uint8_t *b)
{
  h->version = load_be32(b + 4);
  h->backing_offset = load_be64(b + 8);
  h->backing_size = load_be32(b + 16);
  h->cluster_bits = load_be32(b + 20);
  h->size = load_be64(b + 24);
  h->crypt_method = load_be32(b + 32);
  h->l1_size = load_be32(b + 36);
  h->l1_offset = load_be64(b + 40);
  h->reftable_offset = load_be64(b + 48);
  h->reftable_clusters = load_be32(b + 56);
  h->nb_snapshots = load_be32(b + 60);
  h->snapshots_offset = load_be64(b + 64);
  h->refcount_order = 4;
  h->header_length = QCOW2_V2_HEADER_LEN;
  if (h->version >= 3) {
    h->incompat = load_be64(b + 72);
    h->compat = load_be64(b + 80);
    h->autoclear = load_be64(b + 88);
    h->refcount_order = load_be32(b + 96);
    h->header_length = load_be32(b + 100);
  }
}

static int check_fixed(struct qcow2_image *q)
{
  struct qcow2_header *h = &q->h;
  if (h->version != 2 && h->version != 3) {
    log_error("qcow2: %s: unsupported qcow2 version %u", q->filename,
              h->version);
    return -ENOTSUP;
  }
  if (h->cluster_bits < QCOW2_MIN_CLUSTER_BITS ||
      h->cluster_bits > QCOW2_MAX_CLUSTER_BITS) {
    log_error("qcow2: %s: cluster_bits %u out of range 9..21", q->filename,
              h->cluster_bits);
    return -EINVAL;
  }
  q->cluster_size = 1u << h->cluster_bits;
  if (h->version >= 3 &&
      (h->header_length < QCOW2_V3_HEADER_LEN || h->header_length % 8 ||
       h->header_length > q->cluster_size))
    return hdr_fail(q, "bad header length");
  if (h->refcount_order > 6)
    return hdr_fail(q, "refcount_order larger than 6");
  if (h->backing_offset) {
    if (h->backing_size > QCOW2_MAX_BACKING_NAME ||
        h->backing_offset < h->header_length ||
        !range_within(h->backing_offset, h->backing_size, q->cluster_size))
      return hdr_fail(q, "backing file name too long or outside the header "
                         "cluster");
  }
  return 0;
}

int qcow2_header_read(struct qcow2_image *q)
{
  struct qcow2_header *h = &q->h;
  if (q->file_size < QCOW2_V2_HEADER_LEN)
    return hdr_fail(q, "file too small to be a qcow2 image");
  uint8_t first[QCOW2_V3_HEADER_LEN] = {0};
  int r = qcow2_pread_full(q->fd, first, sizeof first, 0);
  if (r < 0)
    return r;
  if (load_be32(first) != QCOW2_MAGIC)
    return hdr_fail(q, "bad magic: not a qcow2 image");
  parse_fixed(h, first);
  if ((r = check_fixed(q)) < 0)
    return r;
  /* The header, its extensions and the backing name fit in cluster 0. */
  CLEANUP_FREE uint8_t *buf = calloc(1, q->cluster_size);
  if (!buf)
    return -ENOMEM;
  if ((r = qcow2_pread_full(q->fd, buf, q->cluster_size, 0)) < 0)
    return r;
  if (h->header_length > QCOW2_V3_HEADER_LEN)
    h->compression_type = buf[104];
  if ((r = read_extensions(q, buf)) < 0)
    return r;
  if (h->backing_offset && h->backing_size &&
      (r = dup_name(q, buf + h->backing_offset, h->backing_size,
                    &h->backing_file, "backing file name")) < 0)
    return r;
  return check_features(q);
}

void qcow2_header_free(struct qcow2_header *h)
{
  free(h->backing_file);
  free(h->backing_format);
  free(h->data_file);
  free(h->features);
}
