/* The internal snapshot table: parsing and validating its entries, and
 * finding a snapshot by id or name (qcow2.txt "Snapshots"). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2-int.h"
#include "util/checked.h"
#include "util/cleanup.h"
#include "util/endian.h"
#include "util/log.h"

static int snap_fail(struct qcow2_image *q, uint32_t i, uint64_t off,
                     const char *why)
{
  log_error("qcow2: %s: snapshot table entry %u at offset %#" PRIx64 ": %s",
            q->filename, i, off, why);
  return -EINVAL;
}

static char *dup_str(const uint8_t *p, size_t n)
{
  return strndup((const char *)p, n);
}

/* Entry i at *off: the 40-byte fixed part, extra data, id, name. */
static int read_entry(struct qcow2_image *q, uint32_t i, uint64_t *off,
                      struct qcow2_snapshot *sn)
{
  uint8_t f[40];
  int r = qcow2_read_meta(q, q->fd, f, sizeof f, *off, "snapshot table");
  if (r < 0)
    return r;
  sn->l1_offset = load_be64(f);
  sn->l1_size = load_be32(f + 8);
  uint32_t id_len = load_be16(f + 12), name_len = load_be16(f + 14);
  sn->info.date_sec = load_be32(f + 16);
  sn->info.date_nsec = load_be32(f + 20);
  sn->info.vm_clock_nsec = load_be64(f + 24);
  sn->info.vm_state_size = load_be32(f + 32);
  uint32_t extra = load_be32(f + 36);
  if (extra > QCOW2_MAX_SNAPSHOT_EXTRA)
    return snap_fail(q, i, *off, "too much extra data");
  size_t vlen = (size_t)extra + id_len + name_len;
  CLEANUP_FREE uint8_t *var = malloc(vlen + 1);
  if (!var)
    return -ENOMEM;
  if ((r = qcow2_read_meta(q, q->fd, var, vlen, *off + 40, "snapshot table")) <
      0)
    return r;
  if (extra >= 8)
    sn->info.vm_state_size = load_be64(var);
  if (extra >= 16) {
    sn->info.has_disk_size = true;
    sn->info.disk_size = load_be64(var + 8);
  }
  if (extra >= 24 && load_be64(var + 16) != UINT64_MAX) {
    sn->info.has_icount = true;
    sn->info.icount = load_be64(var + 16);
  }
  sn->info.id = dup_str(var + extra, id_len);
  sn->info.name = dup_str(var + extra + id_len, name_len);
  if (!sn->info.id || !sn->info.name)
    return -ENOMEM;
  if (id_len == 0)
    return snap_fail(q, i, *off, "empty snapshot id");
  if (sn->l1_size > QCOW2_MAX_L1_BYTES / 8)
    return snap_fail(q, i, *off, "L1 table larger than the limit");
  if (sn->l1_size &&
      (!IS_ALIGNED(sn->l1_offset, q->cluster_size) ||
       sn->l1_offset < q->cluster_size ||
       !range_within(sn->l1_offset, (uint64_t)sn->l1_size * 8, q->file_size)))
    return snap_fail(q, i, *off, "L1 table offset invalid");
  *off = ROUND_UP(*off + 40 + vlen, 8);
  return 0;
}

int qcow2_snapshots_read(struct qcow2_image *q)
{
  struct qcow2_header *h = &q->h;
  uint32_t n = h->nb_snapshots;
  if (!n)
    return 0;
  if (n > QCOW2_MAX_SNAPSHOTS) {
    log_error("qcow2: %s: too many snapshots (%u)", q->filename, n);
    return -EINVAL;
  }
  uint64_t off = h->snapshots_offset;
  if (!IS_ALIGNED(off, q->cluster_size) || off < q->cluster_size) {
    log_error("qcow2: %s: snapshot table offset %#" PRIx64 " invalid",
              q->filename, off);
    return -EINVAL;
  }
  q->snapshots = calloc(n, sizeof *q->snapshots);
  q->snapshot_infos = calloc(n, sizeof *q->snapshot_infos);
  if (!q->snapshots || !q->snapshot_infos)
    return -ENOMEM;
  q->nb_snapshots = n;
  for (uint32_t i = 0; i < n; i++) {
    int r = read_entry(q, i, &off, &q->snapshots[i]);
    if (r < 0)
      return r;
    if (off - h->snapshots_offset > QCOW2_MAX_SNAPSHOTS_BYTES) {
      log_error("qcow2: %s: snapshot table larger than the limit", q->filename);
      return -EINVAL;
    }
    q->snapshot_infos[i] = q->snapshots[i].info;
  }
  return 0;
}

void qcow2_snapshots_free(struct qcow2_image *q)
{
  for (size_t i = 0; q->snapshots && i < q->nb_snapshots; i++) {
    free((char *)q->snapshots[i].info.id);
    free((char *)q->snapshots[i].info.name);
  }
  free(q->snapshots);
  free(q->snapshot_infos);
}

/* As QEMU: an id matches first, then a name. */
int qcow2_snapshot_find(struct qcow2_image *q, const char *s)
{
  for (size_t i = 0; i < q->nb_snapshots; i++)
    if (strcmp(q->snapshots[i].info.id, s) == 0)
      return (int)i;
  for (size_t i = 0; i < q->nb_snapshots; i++)
    if (strcmp(q->snapshots[i].info.name, s) == 0)
      return (int)i;
  return -1;
}
