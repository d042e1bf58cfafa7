/* The nbdkit plugin host's interface to the server: load a plugin as a
 * backend, plugin debug flags, and what the host must know about how
 * the server runs (nbdkit-plugin(3) "Callback lifecycle"). */
#ifndef QNBD_NBDKIT_HOST_H
#define QNBD_NBDKIT_HOST_H

#include <stdbool.h>

struct backend;

/* Load plugin (a short NAME found in the plugin directory, or a PATH),
 * set its -D debug flags, pass it argv (key=value or bare values), then
 * run config_complete, thread_model and get_ready.  On success *out is
 * a backend whose thread_model is the effective model the server must
 * enforce.  On failure logs why and returns a negative errno. */
int nbdkit_host_new(const char *plugin, int argc, char *const *argv,
                    struct backend **out);

/* Remember "-D NAME.FLAG=N" (call before nbdkit_host_new).  Returns 0,
 * or -EINVAL after logging when spec is malformed. */
int nbdkit_host_debug_flag(const char *spec);

/* Tell the host that stdin/stdout carry the NBD connection (-s), so
 * nbdkit_stdio_safe() returns 0.  Call before nbdkit_host_new. */
void nbdkit_host_set_stdio(bool serving_on_stdio);

#endif
