/* A test plugin that misbehaves in the way mode= says, so that tests
 * can check the host validates what plugins return and maps their
 * errors (nbdkit-plugin(3) ".get_size", ".block_size", ".extents",
 * ".thread_model", "Error handling", ".zero" fallback).  Otherwise it
 * is a 1M RAM disk. */
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define THREAD_MODEL NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS

#define SIZE (1024 * 1024)
static char disk[SIZE];
static const char *mode = "";

static bool is(const char *m)
{
  return strcmp(mode, m) == 0;
}

static int misbehave_config(const char *key, const char *value)
{
  if (strcmp(key, "mode") != 0) {
    nbdkit_error("unknown parameter '%s'", key);
    return -1;
  }
  mode = value;
  return 0;
}

static int misbehave_thread_model(void)
{
  return is("thread-model") ? 9 : NBDKIT_THREAD_MODEL_PARALLEL;
}

static void *misbehave_open(int readonly)
{
  if (is("open")) {
    nbdkit_error("open refused by mode=open");
    return NULL;
  }
  return NBDKIT_HANDLE_NOT_NEEDED;
}

static int64_t misbehave_get_size(void *handle)
{
  return is("size") ? -5 : SIZE;
}

static int misbehave_block_size(void *handle, uint32_t *minimum,
                                uint32_t *preferred, uint32_t *maximum)
{
  *minimum = is("block-size") ? 3 : 1;
  *preferred = 4096;
  *maximum = 0xffffffff;
  return 0;
}

static int misbehave_can_fast_zero(void *handle)
{
  return 1;
}

static int misbehave_pread(void *handle, void *buf, uint32_t count,
                           uint64_t offset, uint32_t flags)
{
  if (is("errno") && offset == 0) {
    errno = ENOSPC; /* errno_is_preserved: this is the error */
    return -1;
  }
  if (is("eio") && offset == 0) {
    errno = 0; /* neither set_error nor errno: EIO */
    return -1;
  }
  memcpy(buf, disk + offset, count);
  return 0;
}

static int misbehave_pwrite(void *handle, const void *buf, uint32_t count,
                            uint64_t offset, uint32_t flags)
{
  memcpy(disk + offset, buf, count);
  return 0;
}

/* mode=zero-notsup: zero always fails with ENOTSUP, so the host must
 * fall back to writing zeroes, except for fast zero requests. */
static int misbehave_zero(void *handle, uint32_t count, uint64_t offset,
                          uint32_t flags)
{
  if (is("zero-notsup")) {
    nbdkit_set_error(ENOTSUP);
    return -1;
  }
  memset(disk + offset, 0, count);
  return 0;
}

static int misbehave_extents(void *handle, uint32_t count, uint64_t offset,
                             uint32_t flags, struct nbdkit_extents *extents)
{
  if (is("no-extent"))
    return 0;
  if (is("gap-extent"))
    return nbdkit_add_extent(extents, offset + 512, 512, 0);
  return nbdkit_add_extent(extents, 0, SIZE, 0);
}

static struct nbdkit_plugin plugin = {
    .name = "misbehave",
    .config = misbehave_config,
    .magic_config_key = "mode",
    .thread_model = misbehave_thread_model,
    .open = misbehave_open,
    .get_size = misbehave_get_size,
    .block_size = misbehave_block_size,
    .can_fast_zero = misbehave_can_fast_zero,
    .pread = misbehave_pread,
    .pwrite = misbehave_pwrite,
    .zero = misbehave_zero,
    .extents = misbehave_extents,
    .errno_is_preserved = 1,
};
NBDKIT_REGISTER_PLUGIN(plugin)
