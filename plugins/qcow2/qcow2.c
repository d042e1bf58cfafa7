/* nbdkit-qcow2-plugin: serves a qcow2 image (and its backing chain)
 * through nbdkit's plugin ABI, with qnbd's qcow2 engine linked in, so
 * that real nbdkit and qnbd load it alike.
 *
 *   nbdkit ./nbdkit-qcow2-plugin.so [file=]disk.qcow2 \
 *          [snapshot=NAME|ID] [cache-size=SIZE]
 *
 * The engine reads only for now, so the export is read-only: no
 * pwrite/zero/trim/flush callbacks exist (nbdkit then advertises none
 * of them).  When the engine's write side lands they map one to one on
 * qcow2_pwrite, qcow2_zero, qcow2_discard and qcow2_flush, and
 * can_write follows qcow2_is_writable().
 *
 * One image is opened before nbdkit serves anything and shared by every
 * connection: the engine takes its own locks (qcow2.h "Concurrency"),
 * hence the PARALLEL thread model and multi-conn.
 */
#define NBDKIT_API_VERSION 2 /* before the header: flags on callbacks */
#include <nbdkit-plugin.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2/qcow2.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

static char *file;         /* absolute path of the top image */
static char *snapshot;     /* internal snapshot to serve, or NULL */
static int64_t cache_size; /* metadata cache bytes; 0: the engine's default */
static struct qcow2_image *img;
static char description[512];

static int qcow2p_config(const char *key, const char *value)
{
  if (strcmp(key, "file") == 0) {
    if (file) {
      nbdkit_error("file given twice");
      return -1;
    }
    /* nbdkit may chdir("/") when it daemonizes. */
    return (file = nbdkit_absolute_path(value)) ? 0 : -1;
  }
  if (strcmp(key, "snapshot") == 0) {
    if (snapshot || !*value) {
      nbdkit_error(*value ? "snapshot given twice" : "empty snapshot name");
      return -1;
    }
    if (!(snapshot = strdup(value))) {
      nbdkit_error("strdup: %m");
      return -1;
    }
    return 0;
  }
  if (strcmp(key, "cache-size") == 0) {
    cache_size = nbdkit_parse_size(value); /* reports its own errors */
    return cache_size == -1 ? -1 : 0;
  }
  nbdkit_error("unknown parameter '%s'", key);
  return -1;
}

static int qcow2p_config_complete(void)
{
  if (!file) {
    nbdkit_error("the file parameter is required (file=DISK.qcow2)");
    return -1;
  }
  return 0;
}

/* "1 KiB", "64 KiB", "2 MiB": cluster sizes are powers of two. */
static void size_text(char *buf, size_t len, uint64_t n)
{
  if (n >= 1024 * 1024 && n % (1024 * 1024) == 0)
    snprintf(buf, len, "%" PRIu64 " MiB", n / (1024 * 1024));
  else if (n >= 1024 && n % 1024 == 0)
    snprintf(buf, len, "%" PRIu64 " KiB", n / 1024);
  else
    snprintf(buf, len, "%" PRIu64 " bytes", n);
}

/* Appends printf output to description, silently truncated (it is a
 * human-readable hint, NBD_INFO_DESCRIPTION). */
__attribute__((format(printf, 1, 2))) static void describe(const char *fmt, ...)
{
  size_t used = strlen(description);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(description + used, sizeof description - used, fmt, ap);
  va_end(ap);
}

/* "qcow2 image v3, cluster size 64 KiB, zstd compression, extended L2,
 * backing file base.raw (raw), snapshot 'snap'". */
static void qcow2p_describe(void)
{
  const struct qcow2_info *in = qcow2_get_info(img);
  char cs[32];

  size_text(cs, sizeof cs, in->cluster_size);
  describe("qcow2 image v%" PRIu32 ", cluster size %s", in->version, cs);
  if (in->compression && strcmp(in->compression, "zlib") != 0)
    describe(", %s compression", in->compression);
  if (in->extended_l2)
    describe(", extended L2");
  if (in->data_file)
    describe(", data file %s", in->data_file);
  const struct qcow2_image *b = qcow2_backing(img);
  if (b) {
    const struct qcow2_info *bi = qcow2_get_info(b);
    describe(", backing file %s (%s)", in->backing_file, bi->format);
  }
  if (snapshot)
    describe(", snapshot '%s'", snapshot);
}

/* Open the image before nbdkit listens, so that a bad file stops nbdkit
 * with an error and a non-zero exit.  The read-only engine starts no
 * threads; threads started here would not survive nbdkit's fork when it
 * daemonizes, so any background work of the write side (the cluster
 * reserve) must start in an .after_fork callback. */
static int qcow2p_get_ready(void)
{
  struct qcow2_open_opts opts = {
      .readonly = true,
      .snapshot = snapshot,
      .cache_size = (uint64_t)cache_size,
  };
  int r = qcow2_open(file, &opts, &img);
  if (r < 0) {
    /* The engine has said why (log.c); this line says what failed. */
    nbdkit_error("cannot serve %s: %s", file, strerror(-r));
    return -1;
  }
  qcow2p_describe();
  nbdkit_debug("%s: %s", file, description);
  return 0;
}

static void qcow2p_unload(void)
{
  if (img)
    qcow2_close(img);
  free(file);
  free(snapshot);
}

/* Every connection shares the one image. */
static void *qcow2p_open(int readonly)
{
  return NBDKIT_HANDLE_NOT_NEEDED;
}

static int64_t qcow2p_get_size(void *handle)
{
  return (int64_t)qcow2_size(img);
}

static const char *qcow2p_export_description(void *handle)
{
  return description;
}

static int qcow2p_can_write(void *handle)
{
  return qcow2_is_writable(img);
}

/* Every connection reads the same image through the same cache. */
static int qcow2p_can_multi_conn(void *handle)
{
  return 1;
}

static int qcow2p_can_cache(void *handle)
{
  return NBDKIT_CACHE_NATIVE;
}

/* Any byte range reads correctly; a whole cluster is what the engine
 * maps (and decompresses) at once. */
static int qcow2p_block_size(void *handle, uint32_t *minimum,
                             uint32_t *preferred, uint32_t *maximum)
{
  *minimum = 1;
  *preferred = qcow2_get_info(img)->cluster_size;
  *maximum = 0xffffffff;
  return 0;
}

/* -1 with the engine's errno for the client (nbdkit maps it to an NBD
 * error) and a line in nbdkit's log. */
static int qcow2p_fail(const char *what, int r, uint32_t count, uint64_t offset)
{
  nbdkit_error("%s: %s of %" PRIu32 " bytes at offset %" PRIu64 ": %s", file,
               what, count, offset, strerror(-r));
  nbdkit_set_error(-r);
  return -1;
}

static int qcow2p_pread(void *handle, void *buf, uint32_t count,
                        uint64_t offset, uint32_t flags)
{
  int r = qcow2_pread(img, buf, count, offset);
  return r < 0 ? qcow2p_fail("read", r, count, offset) : 0;
}

/* NBD_CMD_CACHE: load the metadata and have the kernel read ahead. */
static int qcow2p_cache(void *handle, uint32_t count, uint64_t offset,
                        uint32_t flags)
{
  int r = qcow2_prefetch(img, count, offset);
  return r < 0 ? qcow2p_fail("cache", r, count, offset) : 0;
}

/* base:allocation (NBD protocol "Metadata querying"): the engine's
 * status through the backing chain, as qemu-img map computes it.  A run
 * not read from data is a hole; one that reads as zeroes is zero. */
static int qcow2p_extents(void *handle, uint32_t count, uint64_t offset,
                          uint32_t flags, struct nbdkit_extents *extents)
{
  uint64_t end = offset + count;
  struct qcow2_status st;

  while (offset < end) {
    int r = qcow2_block_status(img, offset, end - offset, &st);
    if (r == 0 && st.length == 0)
      r = -EIO; /* no progress: fail rather than loop */
    if (r < 0)
      return qcow2p_fail("block status", r, (uint32_t)(end - offset), offset);
    uint32_t type = 0;
    if (!(st.flags & QCOW2_BS_DATA))
      type |= NBDKIT_EXTENT_HOLE;
    if (st.flags & QCOW2_BS_ZERO)
      type |= NBDKIT_EXTENT_ZERO;
    if (nbdkit_add_extent(extents, offset, st.length, type) == -1)
      return -1;
    offset += st.length;
    if (flags & NBDKIT_FLAG_REQ_ONE)
      break; /* the client wants only the first extent */
  }
  return 0;
}

static struct nbdkit_plugin plugin = {
    .name = "qcow2",
    .longname = "qnbd qcow2 plugin",
    .version = "1.0",
    .description = "Serves qcow2 images (read-only) with qnbd's qcow2 engine.",
    .config = qcow2p_config,
    .config_complete = qcow2p_config_complete,
    .config_help =
        "[file=]<FILENAME>   (required) the qcow2 image\n"
        "snapshot=<NAME|ID>  serve this internal snapshot\n"
        "cache-size=<SIZE>   metadata cache size (default: enough to map\n"
        "                    the whole image, up to 64 GiB of it)",
    .magic_config_key = "file",
    .get_ready = qcow2p_get_ready,
    .unload = qcow2p_unload,
    .open = qcow2p_open,
    .get_size = qcow2p_get_size,
    .export_description = qcow2p_export_description,
    .can_write = qcow2p_can_write,
    .can_multi_conn = qcow2p_can_multi_conn,
    .can_cache = qcow2p_can_cache,
    .block_size = qcow2p_block_size,
    .pread = qcow2p_pread,
    .cache = qcow2p_cache,
    .extents = qcow2p_extents,
};

NBDKIT_REGISTER_PLUGIN(plugin)
