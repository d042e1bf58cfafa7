/* The worker pool that runs backend calls and option processing off the
 * event loop.  Compared with uv_queue_work it wakes at most one thread
 * per queued job that no idle thread is already waking for, takes a
 * whole burst of submissions under one lock, and hands completions
 * back to the loop in batches through one uv_async_t. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "util/log.h"

static void pool_done_cb(uv_async_t *a)
{
  struct pool *p = a->data;
  struct pool_job *j;

  pthread_mutex_lock(&p->done_lock);
  j = p->done_head;
  p->done_head = p->done_tail = NULL;
  pthread_mutex_unlock(&p->done_lock);
  while (j) {
    struct pool_job *next = j->next;
    /* Outstanding jobs keep the loop running, as libuv's work
     * requests do. */
    if (--p->outstanding == 0)
      uv_unref((uv_handle_t *)&p->async);
    j->done(j);
    j = next;
  }
}

static void job_finished(struct pool *p, struct pool_job *j)
{
  bool was_empty;

  j->next = NULL;
  pthread_mutex_lock(&p->done_lock);
  was_empty = p->done_head == NULL;
  if (p->done_tail)
    p->done_tail->next = j;
  else
    p->done_head = j;
  p->done_tail = j;
  pthread_mutex_unlock(&p->done_lock);
  if (was_empty)
    uv_async_send(&p->async);
}

static void *pool_thread(void *arg)
{
  struct pool *p = arg;

  pthread_mutex_lock(&p->lock);
  for (;;) {
    while (!p->head && !p->stop) {
      p->idle++;
      pthread_cond_wait(&p->cond, &p->lock);
      p->idle--;
      if (p->wakeups)
        p->wakeups--;
    }
    if (!p->head)
      break; /* stopping and nothing left */
    struct pool_job *j = p->head;
    __atomic_sub_fetch(&p->queued, 1, __ATOMIC_RELAXED);
    p->head = j->next;
    if (!p->head)
      p->tail = NULL;
    pthread_mutex_unlock(&p->lock);
    j->work(j);
    job_finished(p, j);
    pthread_mutex_lock(&p->lock);
  }
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

int pool_init(struct pool *p, uv_loop_t *loop, unsigned nthreads)
{
  *p = (struct pool){0};
  pthread_mutex_init(&p->lock, NULL);
  pthread_mutex_init(&p->done_lock, NULL);
  pthread_cond_init(&p->cond, NULL);
  uv_async_init(loop, &p->async, pool_done_cb);
  p->async.data = p;
  uv_unref((uv_handle_t *)&p->async); /* until a job is outstanding */
  p->threads = calloc(nthreads, sizeof *p->threads);
  if (!p->threads)
    return -ENOMEM;
  for (unsigned i = 0; i < nthreads; i++) {
    int e = pthread_create(&p->threads[i], NULL, pool_thread, p);
    if (e) {
      log_error("cannot start worker threads: %s", strerror(e));
      pool_stop(p);
      return -e;
    }
    p->nthreads++;
  }
  return 0;
}

void pool_submit(struct pool *p, struct pool_job *j)
{
  if (p->outstanding++ == 0)
    uv_ref((uv_handle_t *)&p->async);
  j->next = NULL;
  pthread_mutex_lock(&p->lock);
  if (p->tail)
    p->tail->next = j;
  else
    p->head = j;
  p->tail = j;
  __atomic_add_fetch(&p->queued, 1, __ATOMIC_RELAXED);
  /* Wake an idle thread unless enough wake-ups are already on the way. */
  if (p->idle > p->wakeups) {
    p->wakeups++;
    pthread_cond_signal(&p->cond);
  }
  pthread_mutex_unlock(&p->lock);
}

void pool_stop(struct pool *p)
{
  pthread_mutex_lock(&p->lock);
  p->stop = true;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->lock);
  for (unsigned i = 0; i < p->nthreads; i++)
    pthread_join(p->threads[i], NULL);
  free(p->threads);
  p->threads = NULL;
  p->nthreads = 0;
  if (!uv_is_closing((uv_handle_t *)&p->async))
    uv_close((uv_handle_t *)&p->async, NULL);
}
