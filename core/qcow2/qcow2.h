/* The qcow2 engine's public interface: open an image (and its backing
 * chain), read it, ask for block status, dirty bitmaps and the
 * information qnbd-img prints.  No NBD knowledge lives here.
 *
 * Concurrency: every function may be called from any number of threads
 * at once on the same image (reads take only shared locks on cached
 * metadata tables; no lock is held across data I/O).
 *
 * Part 1 of the engine is read-only: an image is always opened with
 * O_RDONLY (whatever opts.readonly says) and qcow2_is_writable() is
 * false.  The write side (part 2) extends this header, with the same
 * conventions, by
 *   int qcow2_pwrite(img, buf, count, offset, flags);   (QCOW2_FUA)
 *   int qcow2_zero(img, count, offset, flags);   (QCOW2_MAY_UNMAP, FAST)
 *   int qcow2_discard(img, count, offset);
 *   int qcow2_flush(img);
 * built on the same per-slice locks of the metadata cache (an L2 slice
 * is taken exclusively only while its entries change; data I/O runs
 * with no lock held), an in-flight allocation table ordering overlapping
 * allocating writes, and a host-cluster reserve refilled in the
 * background so that allocation does not wait for refcount I/O.
 */
#ifndef QNBD_CORE_QCOW2_H
#define QNBD_CORE_QCOW2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct backend;

/* How to open an image.  A zeroed struct means: read-only, the active
 * image (no snapshot), the default metadata cache. */
struct qcow2_open_opts {
  bool readonly;        /* serve read-only (always true in part 1) */
  const char *snapshot; /* internal snapshot to serve, by id or name */
  uint64_t cache_size;  /* metadata cache in bytes; 0: the default,
                           which maps min(virtual size, 64 GiB) */
};

/* One image of a chain: a qcow2 file or a raw file used as backing. */
struct qcow2_image;

int qcow2_open(const char *path, const struct qcow2_open_opts *opts,
               struct qcow2_image **out);
/* The same for a top image of format "qcow2", "raw" (a chain of one
 * raw file: reads and SEEK_DATA block status) or NULL (probe). */
int qcow2_open_format(const char *path, const char *format,
                      const struct qcow2_open_opts *opts,
                      struct qcow2_image **out);
void qcow2_close(struct qcow2_image *img);

/* Virtual size in bytes (of the snapshot when one is served). */
uint64_t qcow2_size(const struct qcow2_image *img);
bool qcow2_is_writable(const struct qcow2_image *img);
/* The next image of the backing chain, or NULL. */
const struct qcow2_image *qcow2_backing(const struct qcow2_image *img);

/* Read [offset, offset+count); the range must lie within the size.
 * Returns 0 or a negative errno (-EIO, logged with the offending
 * offset, when a metadata table is corrupt). */
int qcow2_pread(struct qcow2_image *img, void *buf, uint64_t count,
                uint64_t offset);

/* Load the metadata mapping [offset, offset+count) into the cache and
 * ask the kernel to read ahead its data (NBD_CMD_CACHE). */
int qcow2_prefetch(struct qcow2_image *img, uint64_t count, uint64_t offset);

/* Block status flags, with QEMU's meaning (block/io.c). */
#define QCOW2_BS_DATA         1u /* reads from data (not synthesised) */
#define QCOW2_BS_ZERO         2u /* reads as zeroes */
#define QCOW2_BS_PRESENT      4u /* allocated in the layer that answered */
#define QCOW2_BS_OFFSET_VALID 8u /* host_offset / file are meaningful */

struct qcow2_status {
  uint64_t length;      /* of the run starting at the query offset */
  unsigned flags;       /* QCOW2_BS_* */
  unsigned depth;       /* 0: the top image, 1: its backing ... */
  uint64_t host_offset; /* with QCOW2_BS_OFFSET_VALID */
  const char *file;     /* the file host_offset is in */
};

/* Status of the run starting at offset (at most count bytes) through the
 * backing chain, as `qemu-img map` computes it: the first layer whose
 * answer says data or zero answers. */
int qcow2_block_status(struct qcow2_image *img, uint64_t offset, uint64_t count,
                       struct qcow2_status *st);

/* qemu:allocation-depth: *depth is 0 when no layer allocates the run,
 * 1 when the top image does, 2 for its backing file ... */
int qcow2_allocation_depth(struct qcow2_image *img, uint64_t offset,
                           uint64_t count, uint64_t *len, unsigned *depth);

/* Persistent dirty bitmaps (qcow2 "bitmaps" extension). */
#define QCOW2_BITMAP_IN_USE 1u /* not saved consistently: not served */
#define QCOW2_BITMAP_AUTO   2u
struct qcow2_bitmap_info {
  const char *name;
  uint32_t flags; /* QCOW2_BITMAP_* */
  uint64_t granularity;
};

/* The dirty state of the run starting at offset in bitmap index idx of
 * qcow2_get_info()->bitmaps.  -EINVAL for an in-use bitmap. */
int qcow2_bitmap_status(struct qcow2_image *img, size_t idx, uint64_t offset,
                        uint64_t count, uint64_t *len, bool *dirty);

struct qcow2_snapshot_info {
  const char *id, *name;
  uint64_t vm_state_size;
  uint32_t date_sec, date_nsec;
  uint64_t vm_clock_nsec;
  bool has_icount;
  uint64_t icount;
  bool has_disk_size;
  uint64_t disk_size;
};

/* What `qemu-img info` reports about one image of a chain. */
struct qcow2_info {
  const char *filename; /* as named by the user or the overlay */
  const char *format;   /* "qcow2" or "raw" */
  uint64_t virtual_size;
  uint64_t actual_size; /* allocated bytes of the file */
  /* The rest is for qcow2 images only. */
  uint32_t version;
  uint32_t cluster_size;
  uint32_t refcount_bits;
  uint64_t incompatible_features, compatible_features, autoclear_features;
  bool dirty, corrupt, lazy_refcounts, extended_l2;
  const char *compression;           /* "zlib" or "zstd" */
  const char *backing_file;          /* as stored, or NULL */
  const char *backing_format;        /* from the extension, or NULL */
  const char *full_backing_filename; /* resolved path, or NULL */
  const char *data_file;             /* external data file, or NULL */
  bool data_file_raw;
  size_t nb_snapshots;
  const struct qcow2_snapshot_info *snapshots;
  size_t nb_bitmaps;
  const struct qcow2_bitmap_info *bitmaps;
};

const struct qcow2_info *qcow2_get_info(const struct qcow2_image *img);

/* True when the file at path starts with the qcow2 magic. */
bool qcow2_probe(const char *path);

/* The qnbd backend serving a qcow2 image (core/backend.h):
 * thread model parallel, read-only for now, base:allocation plus
 * qemu:allocation-depth and qemu:dirty-bitmap:NAME contexts. */
int qcow2_backend_new(const char *path, const struct qcow2_open_opts *opts,
                      struct backend **out);

/* Creating an image (qnbd-img create), with qemu-img's options. */
enum qcow2_prealloc {
  QCOW2_PREALLOC_OFF,
  QCOW2_PREALLOC_METADATA, /* L2 tables and data clusters mapped */
  QCOW2_PREALLOC_FALLOC,   /* ... and the data's blocks fallocated */
  QCOW2_PREALLOC_FULL,     /* ... and zeroes written */
};
struct qcow2_create_opts {
  bool raw;                /* a sparse raw file (only size, preallocation) */
  uint64_t size;           /* virtual size in bytes */
  uint32_t version;        /* 2 (compat=0.10) or 3 (compat=1.1) */
  unsigned cluster_bits;   /* 9 .. 21 */
  unsigned refcount_order; /* log2 of refcount_bits: 0 .. 6 */
  bool lazy_refcounts, extended_l2;
  uint8_t compression_type; /* 0 zlib, 1 zstd */
  const char *backing_file, *backing_format;
  const char *data_file; /* external data file, created too */
  bool data_file_raw;
  enum qcow2_prealloc preallocation;
};
/* Create (or truncate) the image at path.  0 or a negative errno; the
 * reason for a bad option combination is logged. */
int qcow2_create(const char *path, const struct qcow2_create_opts *o);

/* Checking refcounts against references (qnbd-img check), with
 * qemu-img check's counters.  Findings are printed on stderr as
 * qemu-img prints them. */
#define QCOW2_FIX_LEAKS  1 /* lower refcounts to the references */
#define QCOW2_FIX_ERRORS 2 /* raise too-low refcounts, fix COPIED flags */
struct qcow2_check_result {
  uint64_t corruptions, leaks, check_errors;
  uint64_t corruptions_fixed, leaks_fixed;
  uint64_t image_end_offset;
  uint64_t total_clusters, allocated_clusters;
  uint64_t fragmented_clusters, compressed_clusters;
};
/* 0 when the check ran (whatever it found), or a negative errno when the
 * image could not be opened or read. */
int qcow2_check(const char *path, int fix, struct qcow2_check_result *res);

#endif
