/* What the server offers to code that runs inside it (the nbdkit plugin
 * host, backends): shutdown requests and the current connection. */
#ifndef QNBD_SERVER_SERVER_H
#define QNBD_SERVER_SERVER_H

#include <stdbool.h>

/* Ask the server to shut down gracefully (async-signal-safe; any
 * thread). */
void server_request_shutdown(void);

/* Ask the server to close the connection the calling worker thread is
 * serving: at once when force, else after in-flight requests. */
void server_disconnect_current(bool force);

#endif
