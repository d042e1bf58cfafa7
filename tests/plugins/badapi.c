/* A plugin claiming an nbdkit API version that does not exist (99): the
 * host must refuse it rather than guess the struct layout. */
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

static void *badapi_open(int readonly)
{
  return NBDKIT_HANDLE_NOT_NEEDED;
}

static int64_t badapi_get_size(void *handle)
{
  return 0;
}

static int badapi_pread(void *handle, void *buf, uint32_t count,
                        uint64_t offset, uint32_t flags)
{
  return 0;
}

static struct nbdkit_plugin plugin = {
    .name = "badapi",
    .open = badapi_open,
    .get_size = badapi_get_size,
    .pread = badapi_pread,
};

/* NBDKIT_REGISTER_PLUGIN with a wrong version number. */
NBDKIT_DLL_PUBLIC struct nbdkit_plugin *plugin_init(void);
NBDKIT_DLL_PUBLIC struct nbdkit_plugin *plugin_init(void)
{
  plugin._struct_size = sizeof plugin;
  plugin._api_version = 99;
  plugin._thread_model = NBDKIT_THREAD_MODEL_PARALLEL;
  return &plugin;
}
