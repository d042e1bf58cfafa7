/* qnbd-img map: the allocation map of an image through its backing
 * chain, merged and printed as `qemu-img map` does (text or JSON). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "img.h"

struct map_entry {
  uint64_t start, length, offset;
  unsigned depth;
  bool present, zero, data, has_offset;
  const char *file;
};

static bool mergeable(const struct map_entry *c, const struct map_entry *n)
{
  if (!c->length || c->zero != n->zero || c->data != n->data ||
      c->depth != n->depth || c->present != n->present ||
      c->has_offset != n->has_offset)
    return false;
  if (c->has_offset &&
      (c->offset + c->length != n->offset || strcmp(c->file, n->file)))
    return false;
  return true;
}

static int dump_entry(const struct map_entry *e, bool json, bool last)
{
  if (json) {
    printf("{ \"start\": %" PRIu64 ", \"length\": %" PRIu64
           ", \"depth\": %u, \"present\": %s, \"zero\": %s, \"data\": %s",
           e->start, e->length, e->depth, e->present ? "true" : "false",
           e->zero ? "true" : "false", e->data ? "true" : "false");
    if (e->has_offset)
      printf(", \"offset\": %" PRIu64, e->offset);
    printf("}%s", last ? "" : ",\n");
    return 0;
  }
  if (e->data && !e->has_offset) {
    fprintf(stderr, "qnbd-img: File contains external, encrypted or "
                    "compressed clusters.\n");
    return -1;
  }
  if (e->data && !e->zero)
    printf("%#-16" PRIx64 "%#-16" PRIx64 "%#-16" PRIx64 "%s\n", e->start,
           e->length, e->offset, e->file);
  return 0;
}

int img_map(const struct img_args *a)
{
  struct qcow2_image *img;
  if (img_open(a, &img) < 0)
    return 1;
  uint64_t size = qcow2_size(img);
  struct map_entry cur = {0}, next;
  int rc = 0;
  printf(a->json ? "[" : "%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to",
         "File");
  for (uint64_t off = 0; off < size; off += next.length) {
    struct qcow2_status st;
    uint64_t n = size - off < (1u << 30) ? size - off : (1u << 30);
    int r = qcow2_block_status(img, off, n, &st);
    if (r == 0 && st.length == 0)
      r = -EIO; /* never loop forever */
    if (r < 0) {
      fprintf(stderr, "qnbd-img: block status at %" PRIu64 ": %s\n", off,
              strerror(-r));
      rc = 1;
      break;
    }
    next = (struct map_entry){
        .start = off,
        .length = st.length,
        .offset = st.host_offset,
        .depth = st.depth,
        .present = st.flags & QCOW2_BS_PRESENT,
        .zero = st.flags & QCOW2_BS_ZERO,
        .data = st.flags & QCOW2_BS_DATA,
        .has_offset = st.flags & QCOW2_BS_OFFSET_VALID,
        .file = st.file,
    };
    if (mergeable(&cur, &next)) {
      cur.length += next.length;
      continue;
    }
    if (cur.length && dump_entry(&cur, a->json, false) < 0) {
      rc = 1;
      break;
    }
    cur = next;
  }
  if (!rc && cur.length && dump_entry(&cur, a->json, true) < 0)
    rc = 1;
  if (a->json)
    printf("]\n");
  qcow2_close(img);
  return rc;
}
