/* An example nbdkit plugin for plugin authors: a sparse RAM disk that
 * shows the plugin ABI as nbdkit-plugin(3) defines it, using only
 * <nbdkit-plugin.h>, so that it loads into nbdkit and qnbd alike.
 *
 *   qnbd --plugin ./nbdkit-example-plugin.so size=1G
 *   nbdkit ./nbdkit-example-plugin.so 1G        (size is the magic key)
 *
 * The disk is an array of 64 KiB pages allocated on first write;
 * unallocated pages read as zeroes and are reported as holes.  Every
 * connection sees the same disk.
 */
#define NBDKIT_API_VERSION 2 /* before the header: flags on callbacks */
#include <nbdkit-plugin.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* The most concurrency we accept: callbacks may run in parallel, even
 * on one handle, so the page table has its own lock. */
#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

#define PAGE_SIZE (64 * 1024)
#define MAX_SIZE  ((int64_t)1 << 40) /* 1 TiB: a 128 MiB page table */

static int64_t size = -1;
static char **pages; /* size / PAGE_SIZE entries, NULL: a hole */
/* Readers share it; writers that allocate or free pages take it alone. */
static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;

/* Called once per key=value (or bare value: the magic key below). */
static int example_config(const char *key, const char *value)
{
  if (strcmp(key, "size") == 0) {
    size = nbdkit_parse_size(value); /* reports its own errors */
    return size == -1 ? -1 : 0;
  }
  nbdkit_error("unknown parameter '%s'", key);
  return -1;
}

/* All parameters seen: check them and get ready to serve. */
static int example_config_complete(void)
{
  if (size == -1) {
    nbdkit_error("the size parameter is required");
    return -1;
  }
  if (size > MAX_SIZE || size % PAGE_SIZE != 0) {
    nbdkit_error("size must be a multiple of 64K, at most 1T");
    return -1;
  }
  pages = calloc(size / PAGE_SIZE ? size / PAGE_SIZE : 1, sizeof *pages);
  if (!pages) {
    nbdkit_error("calloc: %m");
    return -1;
  }
  return 0;
}

static void example_unload(void)
{
  if (pages)
    for (int64_t i = 0; i < size / PAGE_SIZE; i++)
      free(pages[i]);
  free(pages);
}

/* No per-connection state: every connection shares the disk. */
static void *example_open(int readonly)
{
  nbdkit_debug("client opened export '%s'", nbdkit_export_name());
  return NBDKIT_HANDLE_NOT_NEEDED;
}

static int64_t example_get_size(void *handle)
{
  return size;
}

/* RAM is as durable as it gets: FUA needs no work, flush is a no-op,
 * and every connection sees every write at once (multi-conn). */
static int example_can_fua(void *handle)
{
  return NBDKIT_FUA_NATIVE;
}

static int example_can_multi_conn(void *handle)
{
  return 1;
}

static int example_can_fast_zero(void *handle)
{
  return 1;
}

static int example_block_size(void *handle, uint32_t *minimum,
                              uint32_t *preferred, uint32_t *maximum)
{
  *minimum = 1;
  *preferred = 4096;
  *maximum = 0xffffffff;
  return 0;
}

/* The piece of [offset, offset+count) inside one page: its page index,
 * where it starts in the page, and its length. */
static uint32_t piece(uint64_t offset, uint32_t count, uint64_t *page,
                      uint32_t *in)
{
  *page = offset / PAGE_SIZE;
  *in = offset % PAGE_SIZE;
  return PAGE_SIZE - *in < count ? PAGE_SIZE - *in : count;
}

static int example_pread(void *handle, void *buf, uint32_t count,
                         uint64_t offset, uint32_t flags)
{
  char *out = buf;
  uint64_t page;
  uint32_t in, n;

  pthread_rwlock_rdlock(&lock);
  for (; count > 0; count -= n, offset += n, out += n) {
    n = piece(offset, count, &page, &in);
    if (pages[page])
      memcpy(out, pages[page] + in, n);
    else
      memset(out, 0, n);
  }
  pthread_rwlock_unlock(&lock);
  return 0;
}

static int example_pwrite(void *handle, const void *buf, uint32_t count,
                          uint64_t offset, uint32_t flags)
{
  const char *from = buf;
  uint64_t page;
  uint32_t in, n;
  int r = 0;

  pthread_rwlock_wrlock(&lock);
  for (; count > 0; count -= n, offset += n, from += n) {
    n = piece(offset, count, &page, &in);
    if (!pages[page] && !(pages[page] = calloc(1, PAGE_SIZE))) {
      /* The error the client sees: set it, then fail. */
      nbdkit_error("calloc: %m");
      nbdkit_set_error(ENOMEM);
      r = -1;
      break;
    }
    memcpy(pages[page] + in, from, n);
  }
  pthread_rwlock_unlock(&lock);
  return r;
}

/* Zero (and trim, which reads back as zeroes here): whole pages become
 * holes, partial ones are cleared in place.  Always fast, so
 * NBDKIT_FLAG_FAST_ZERO needs no special case, and FUA none either. */
static int example_zero(void *handle, uint32_t count, uint64_t offset,
                        uint32_t flags)
{
  uint64_t page;
  uint32_t in, n;

  pthread_rwlock_wrlock(&lock);
  for (; count > 0; count -= n, offset += n) {
    n = piece(offset, count, &page, &in);
    if (!pages[page])
      continue;
    if (n == PAGE_SIZE) {
      free(pages[page]);
      pages[page] = NULL;
    } else {
      memset(pages[page] + in, 0, n);
    }
  }
  pthread_rwlock_unlock(&lock);
  return 0;
}

static int example_trim(void *handle, uint32_t count, uint64_t offset,
                        uint32_t flags)
{
  return example_zero(handle, count, offset, flags);
}

static int example_flush(void *handle, uint32_t flags)
{
  return 0;
}

/* Report holes and data from offset on; nbdkit_add_extent merges runs
 * of one type and ignores what lies past the request. */
static int example_extents(void *handle, uint32_t count, uint64_t offset,
                           uint32_t flags, struct nbdkit_extents *extents)
{
  uint64_t page = offset / PAGE_SIZE;
  uint64_t end = offset + count;
  int r = 0;

  pthread_rwlock_rdlock(&lock);
  for (; r == 0 && page * PAGE_SIZE < end; page++) {
    uint32_t type = pages[page] ? 0 : NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
    r = nbdkit_add_extent(extents, page * PAGE_SIZE, PAGE_SIZE, type);
    if (flags & NBDKIT_FLAG_REQ_ONE)
      break; /* the client wants only the first extent */
  }
  pthread_rwlock_unlock(&lock);
  return r;
}

static struct nbdkit_plugin plugin = {
    .name = "example",
    .longname = "qnbd example plugin",
    .version = "1.0",
    .description = "A sparse RAM disk showing the nbdkit plugin ABI.",
    .config = example_config,
    .config_complete = example_config_complete,
    .config_help = "size=<SIZE>  (required) disk size, a multiple of 64K",
    .magic_config_key = "size",
    .unload = example_unload,
    .open = example_open,
    .get_size = example_get_size,
    .can_fua = example_can_fua,
    .can_multi_conn = example_can_multi_conn,
    .can_fast_zero = example_can_fast_zero,
    .block_size = example_block_size,
    .pread = example_pread,
    .pwrite = example_pwrite,
    .zero = example_zero,
    .trim = example_trim,
    .flush = example_flush,
    .extents = example_extents,
    .errno_is_preserved = 1,
};

NBDKIT_REGISTER_PLUGIN(plugin)
