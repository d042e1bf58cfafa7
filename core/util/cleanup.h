/* Scope cleanup attributes: a variable declared with one of these is
 * released automatically when it leaves scope. */
#ifndef QNBD_UTIL_CLEANUP_H
#define QNBD_UTIL_CLEANUP_H

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

void cleanup_free(void *ptr);
void cleanup_close(int *fd);
void cleanup_unlock(pthread_mutex_t **m);

#define CLEANUP_FREE  __attribute__((cleanup(cleanup_free)))
#define CLEANUP_CLOSE __attribute__((cleanup(cleanup_close)))

/* Hold mutex m until the end of the enclosing scope. */
#define LOCK_GUARD_CAT2(a, b) a##b
#define LOCK_GUARD_CAT(a, b)  LOCK_GUARD_CAT2(a, b)
#define SCOPED_LOCK(m)                                                         \
  __attribute__((cleanup(cleanup_unlock))) pthread_mutex_t *LOCK_GUARD_CAT(    \
      lock_guard_, __LINE__) = (pthread_mutex_lock(m), (m))

#endif
