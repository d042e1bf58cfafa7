/* Implementations of the scope cleanup helpers of cleanup.h. */
#include "cleanup.h"

void cleanup_free(void *ptr)
{
  free(*(void **)ptr);
}

void cleanup_close(int *fd)
{
  if (*fd >= 0)
    close(*fd);
}

void cleanup_unlock(pthread_mutex_t **m)
{
  pthread_mutex_unlock(*m);
}
