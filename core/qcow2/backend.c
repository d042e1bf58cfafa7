/* The qnbd backend for qcow2 images: adapts the engine (qcow2.h) to
 * core/backend.h.  Every connection shares the one open image; the
 * engine is safe for parallel calls. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "qcow2-int.h"
#include "util/log.h"

struct qcow2_backend {
  struct backend b;
  struct qcow2_image *img;
  const char **ctx_names; /* allocation-depth, then served bitmaps */
  size_t *ctx_bitmap;     /* ctx_names[i] (i >= 1) -> bitmap index */
  int nb_ctx;
};

static int qb_open(struct backend *b, const struct backend_conn_info *ci,
                   void **handle)
{
  (void)ci;
  *handle = b->priv;
  return 0;
}

static void qb_close(struct backend *b, void *h)
{
  (void)b;
  (void)h;
}

static int qb_get_size(void *h, uint64_t *size)
{
  struct qcow2_backend *qb = h;
  *size = qcow2_size(qb->img);
  return 0;
}

static int qb_caps(void *h, struct backend_caps *caps)
{
  (void)h;
  memset(caps, 0, sizeof *caps);
  caps->can_write = false; /* part 2 of the engine adds writes */
  caps->can_cache = BACKEND_SUPPORT_NATIVE;
  caps->can_extents = true;
  caps->can_multi_conn = true;
  return 0;
}

static int qb_pread(void *h, void *buf, uint64_t count, uint64_t offset,
                    uint32_t flags)
{
  (void)flags;
  struct qcow2_backend *qb = h;
  return qcow2_pread(qb->img, buf, count, offset);
}

/* The event loop's fast path (core/backend.h): a cached L2 slice and
 * data in the page cache, else -EAGAIN and the server uses a worker. */
static int qb_pread_nowait(void *h, void *buf, uint64_t count, uint64_t offset)
{
  struct qcow2_backend *qb = h;
  return qcow2_pread_nowait(qb->img, buf, count, offset);
}

static int qb_cache(void *h, uint64_t count, uint64_t offset, uint32_t flags)
{
  (void)flags;
  struct qcow2_backend *qb = h;
  return qcow2_prefetch(qb->img, count, offset);
}

/* One extent of context ctx starting at off; *len and *flags out. */
static int qb_one(struct qcow2_backend *qb, unsigned ctx, uint64_t off,
                  uint64_t count, uint64_t *len, uint32_t *flags)
{
  if (ctx == 0) {
    struct qcow2_status st;
    int r = qcow2_block_status(qb->img, off, count, &st);
    if (r < 0)
      return r;
    *len = st.length;
    *flags = (st.flags & QCOW2_BS_DATA ? 0 : BACKEND_STATE_HOLE) |
             (st.flags & QCOW2_BS_ZERO ? BACKEND_STATE_ZERO : 0);
    return 0;
  }
  if (ctx == 1) {
    unsigned depth;
    int r = qcow2_allocation_depth(qb->img, off, count, len, &depth);
    *flags = depth;
    return r;
  }
  if ((int)ctx >= qb->nb_ctx)
    return -EINVAL;
  bool dirty;
  int r = qcow2_bitmap_status(qb->img, qb->ctx_bitmap[ctx], off, count, len,
                              &dirty);
  *flags = dirty ? 1 : 0;
  return r;
}

static int qb_extents(void *h, unsigned ctx, uint64_t count, uint64_t offset,
                      uint32_t flags, struct extents *e)
{
  struct qcow2_backend *qb = h;
  uint64_t end = offset + count;
  while (offset < end) {
    uint64_t len;
    uint32_t f;
    int r = qb_one(qb, ctx, offset, end - offset, &len, &f);
    if (r < 0)
      return r;
    if (len == 0) /* never loop forever, whatever the engine says */
      return -EIO;
    if ((r = extents_add(e, offset, len, f)) < 0)
      return r;
    offset += len;
    if (flags & BACKEND_FLAG_REQ_ONE)
      break;
  }
  return 0;
}

static int qb_meta_contexts(void *h, const char *const **names)
{
  struct qcow2_backend *qb = h;
  *names = qb->ctx_names + 1;
  return qb->nb_ctx - 1;
}

static void qb_destroy(struct backend *b)
{
  struct qcow2_backend *qb = b->priv;
  for (int i = 1; i < qb->nb_ctx; i++)
    free((char *)qb->ctx_names[i]);
  free(qb->ctx_names);
  free(qb->ctx_bitmap);
  qcow2_close(qb->img);
  free(qb);
}

static const struct backend_ops qcow2_backend_ops = {
    .name = "qcow2",
    .open = qb_open,
    .close = qb_close,
    .get_size = qb_get_size,
    .caps = qb_caps,
    .pread = qb_pread,
    .pread_nowait = qb_pread_nowait,
    .cache = qb_cache,
    .extents = qb_extents,
    .meta_contexts = qb_meta_contexts,
    .destroy = qb_destroy,
};

/* Context 0 is base:allocation (the server's own); then
 * qemu:allocation-depth, then one per consistent persistent bitmap. */
static int make_contexts(struct qcow2_backend *qb, bool snapshot)
{
  const struct qcow2_info *in = qcow2_get_info(qb->img);
  qb->ctx_names = calloc(in->nb_bitmaps + 2, sizeof *qb->ctx_names);
  qb->ctx_bitmap = calloc(in->nb_bitmaps + 2, sizeof *qb->ctx_bitmap);
  if (!qb->ctx_names || !qb->ctx_bitmap)
    return -ENOMEM;
  qb->ctx_names[0] = "base:allocation";
  qb->ctx_names[1] = strdup("qemu:allocation-depth");
  if (!qb->ctx_names[1])
    return -ENOMEM;
  qb->nb_ctx = 2;
  /* Bitmaps track the active image: a snapshot has none of its own. */
  for (size_t i = 0; !snapshot && i < in->nb_bitmaps; i++) {
    if (in->bitmaps[i].flags & QCOW2_BITMAP_IN_USE) {
      log_warn("qcow2: %s: bitmap '%s' is in use (inconsistent); not served",
               in->filename, in->bitmaps[i].name);
      continue;
    }
    char *n;
    if (asprintf(&n, "qemu:dirty-bitmap:%s", in->bitmaps[i].name) < 0)
      return -ENOMEM;
    qb->ctx_bitmap[qb->nb_ctx] = i;
    qb->ctx_names[qb->nb_ctx++] = n;
  }
  return 0;
}

int qcow2_backend_new(const char *path, const struct qcow2_open_opts *opts,
                      struct backend **out)
{
  struct qcow2_backend *qb = calloc(1, sizeof *qb);
  if (!qb)
    return -ENOMEM;
  int r = qcow2_open(path, opts, &qb->img);
  if (r < 0) {
    free(qb);
    return r;
  }
  qb->b.ops = &qcow2_backend_ops;
  qb->b.thread_model = BACKEND_PARALLEL;
  qb->b.priv = qb;
  if ((r = make_contexts(qb, opts && opts->snapshot)) < 0) {
    qb_destroy(&qb->b);
    return r;
  }
  *out = &qb->b;
  return 0;
}
