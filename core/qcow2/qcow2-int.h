/* Private declarations shared by the qcow2 engine's files: the on-disk
 * constants, the in-memory image, and one section per source file. */
#ifndef QNBD_CORE_QCOW2_INT_H
#define QNBD_CORE_QCOW2_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qcow2.h"

/* Header constants (qcow2.txt "Header"). */
#define QCOW2_MAGIC            0x514649fbu
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_V2_HEADER_LEN    72
#define QCOW2_V3_HEADER_LEN    104

/* QEMU's limits (block/qcow2.h), so that what QEMU refuses we refuse. */
#define QCOW2_MAX_L1_BYTES         (32u << 20)
#define QCOW2_MAX_REFTABLE_BYTES   (8u << 20)
#define QCOW2_MAX_SNAPSHOTS        65536u
#define QCOW2_MAX_SNAPSHOTS_BYTES  (1024u * QCOW2_MAX_SNAPSHOTS)
#define QCOW2_MAX_SNAPSHOT_EXTRA   1024u
#define QCOW2_MAX_BACKING_NAME     1023u
#define QCOW2_MAX_BITMAPS          65535u
#define QCOW2_MAX_BITMAP_DIR_BYTES (1024u * QCOW2_MAX_BITMAPS)
#define QCOW2_MAX_CHAIN            256u

/* Feature bits (qcow2.txt header bytes 72-95). */
#define QCOW2_INCOMPAT_DIRTY          (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT        (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE      (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION    (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2          (1ull << 4)
#define QCOW2_INCOMPAT_KNOWN          0x1full
#define QCOW2_COMPAT_LAZY_REFCOUNTS   (1ull << 0)
#define QCOW2_AUTOCLEAR_BITMAPS       (1ull << 0)
#define QCOW2_AUTOCLEAR_DATA_FILE_RAW (1ull << 1)

/* Header extension types (qcow2.txt "Header extensions"). */
#define QCOW2_EXT_END            0
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE  0x6803f857u
#define QCOW2_EXT_BITMAPS        0x23852875u
#define QCOW2_EXT_CRYPTO         0x0537be77u
#define QCOW2_EXT_DATA_FILE      0x44415441u

/* L1 / L2 entries (qcow2.txt "Cluster mapping"). */
#define QCOW2_OFLAG_COPIED     (1ull << 63)
#define QCOW2_OFLAG_COMPRESSED (1ull << 62)
#define QCOW2_OFLAG_ZERO       1ull
#define QCOW2_OFFSET_MASK      0x00fffffffffffe00ull
#define QCOW2_L1_RESERVED      0x7f000000000001ffull
#define QCOW2_L2_STD_RESERVED  0x3f000000000001feull
#define QCOW2_REFT_RESERVED    0x1ffull

/* Metadata is cached in slices of at most this many bytes. */
#define QCOW2_SLICE_MAX 4096u

struct qcow2_cache;
struct qcow2_bitmap;

struct qcow2_feature_name {
  uint8_t type, bit;
  char name[47];
};

/* The header as parsed and validated (header.c). */
struct qcow2_header {
  uint32_t version;
  uint64_t backing_offset;
  uint32_t backing_size;
  uint32_t cluster_bits;
  uint64_t size;
  uint32_t crypt_method;
  uint32_t l1_size;
  uint64_t l1_offset;
  uint64_t reftable_offset;
  uint32_t reftable_clusters;
  uint32_t nb_snapshots;
  uint64_t snapshots_offset;
  uint64_t incompat, compat, autoclear;
  uint32_t refcount_order;
  uint32_t header_length;
  uint8_t compression_type;
  /* extensions */
  char *backing_file, *backing_format, *data_file;
  bool has_crypto_ext;
  uint32_t nb_bitmaps;
  uint64_t bitmap_dir_size, bitmap_dir_offset;
  struct qcow2_feature_name *features;
  size_t nb_features;
};

struct qcow2_snapshot {
  struct qcow2_snapshot_info info;
  uint64_t l1_offset;
  uint32_t l1_size;
};

enum qcow2_fmt { QCOW2_FMT_QCOW2, QCOW2_FMT_RAW };

/* One image of a chain.  Immutable after open except the cache (which
 * has its own locks) and prealloc_state (atomic). */
struct qcow2_image {
  enum qcow2_fmt fmt;
  char *filename; /* as named */
  char *dir;      /* directory relative names resolve against */
  int fd;         /* the image file */
  uint64_t file_size;
  uint64_t size;  /* virtual */
  unsigned depth; /* 0: top */
  uint64_t id;    /* unique per open image (decompression cache key) */
  struct qcow2_image *backing;
  struct qcow2_cache *cache; /* shared by the chain, owned by the top */
  struct qcow2_info info;
  char *full_backing;

  /* qcow2 only */
  struct qcow2_header h;
  int data_fd; /* == fd without an external data file */
  uint64_t data_size;
  const char *data_name; /* file name for block status reports */
  char *data_path;       /* resolved external data file name */
  uint32_t cluster_size, slice_size;
  unsigned l2_bits;     /* log2 of entries per L2 table */
  unsigned entry_shift; /* log2 of the L2 entry size: 3, or 4 (ext L2) */
  unsigned sc_bits;     /* log2 of the (sub)cluster size */
  bool ext_l2;
  uint64_t *l1; /* host order, validated */
  uint32_t l1_size;
  uint64_t *reftable;
  uint32_t reftable_size;
  struct qcow2_snapshot *snapshots;
  struct qcow2_snapshot_info *snapshot_infos;
  size_t nb_snapshots;
  struct qcow2_bitmap *bitmaps;
  struct qcow2_bitmap_info *bitmap_infos;
  size_t nb_bitmaps;
  atomic_int prealloc_state; /* 0 unknown, 1 no, 2 metadata prealloc */
  atomic_bool no_nowait;     /* the data file refused RWF_NOWAIT */
  pthread_mutex_t prealloc_lock;
};

/* header.c */
int qcow2_header_read(struct qcow2_image *q);
void qcow2_header_free(struct qcow2_header *h);
/* Read exactly len bytes at off (-EIO, logged, when past the end). */
int qcow2_read_meta(struct qcow2_image *q, int fd, void *buf, size_t len,
                    uint64_t off, const char *what);

/* image.c */
/* Open one image of a chain: fmt "qcow2", "raw" or NULL (probe). */
int qcow2_image_open_layer(const char *path, const char *fmt, unsigned depth,
                           struct qcow2_cache *cache,
                           const struct qcow2_open_opts *opts,
                           struct qcow2_image **out);
void qcow2_image_free(struct qcow2_image *q);
/* pread that zero-fills past the end of the file. */
int qcow2_pread_full(int fd, void *buf, size_t len, uint64_t off);

/* cache.c: slices of metadata tables, keyed by (fd, offset). */
struct qcow2_slice;
struct qcow2_cache *qcow2_cache_new(uint64_t bytes);
void qcow2_cache_free(struct qcow2_cache *c);
/* Pin and read-lock the len-byte slice at off of fd, loading it if
 * needed; file_size bounds it.  Release with qcow2_cache_put. */
int qcow2_cache_get(struct qcow2_cache *c, int fd, uint64_t off, size_t len,
                    uint64_t file_size, struct qcow2_slice **s,
                    const uint8_t **data);
/* The same for a slice already cached and loaded, without waiting:
 * -EAGAIN on a miss or while the slice or the index is being written. */
int qcow2_cache_try_get(struct qcow2_cache *c, int fd, uint64_t off,
                        struct qcow2_slice **s, const uint8_t **data);
void qcow2_cache_put(struct qcow2_cache *c, struct qcow2_slice *s);

/* cluster.c: guest offset -> host mapping. */
enum qcow2_sc_type {
  QCOW2_SC_NORMAL,
  QCOW2_SC_COMPRESSED,
  QCOW2_SC_ZERO_PLAIN,
  QCOW2_SC_ZERO_ALLOC,
  QCOW2_SC_UNALLOC_PLAIN,
  QCOW2_SC_UNALLOC_ALLOC,
};
struct qcow2_run {
  enum qcow2_sc_type type;
  uint64_t length;
  uint64_t host;          /* host offset of the run start, when it has one */
  uint64_t csize;         /* compressed: bytes at host */
  uint64_t cluster_start; /* compressed: guest offset of the cluster */
};
/* The run of same-typed (sub)clusters starting at off, at most count
 * bytes (off < size). */
int qcow2_map(struct qcow2_image *q, uint64_t off, uint64_t count,
              struct qcow2_run *r);
/* qcow2_map from cached metadata only: -EAGAIN when it would load. */
int qcow2_map_nowait(struct qcow2_image *q, uint64_t off, uint64_t count,
                     struct qcow2_run *r);
int qcow2_get_refcount(struct qcow2_image *q, uint64_t cluster,
                       uint64_t *refcount);

/* read.c */
int qcow2_layer_pread(struct qcow2_image *q, uint8_t *buf, uint64_t count,
                      uint64_t off);
/* A read that never blocks: metadata from the cache, data from the page
 * cache (RWF_NOWAIT); -EAGAIN when either would wait.  For the server's
 * event loop (core/backend.h pread_nowait). */
int qcow2_pread_nowait(struct qcow2_image *img, void *buf, uint64_t count,
                       uint64_t offset);

/* compress.c: decompress one cluster (qcow2.txt "Compressed Clusters"). */
int qcow2_decompress(int type, void **ctx, const uint8_t *in, size_t in_len,
                     uint8_t *out, size_t out_len);
/* Free the per-thread state *ctx that qcow2_decompress created. */
void qcow2_decompress_free(void *ctx);

/* snapshot.c */
int qcow2_snapshots_read(struct qcow2_image *q);
void qcow2_snapshots_free(struct qcow2_image *q);
int qcow2_snapshot_find(struct qcow2_image *q, const char *id_or_name);

/* bitmap.c */
int qcow2_bitmaps_read(struct qcow2_image *q);
void qcow2_bitmaps_free(struct qcow2_image *q);

#endif
