/* qnbd-img info: what `qemu-img info` prints about an image (and with
 * --backing-chain about each image of its chain), as text or JSON with
 * qemu-img's field names. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "img.h"

static void json_snapshots(FILE *f, const struct qcow2_info *in)
{
  fprintf(f, ",\n    \"snapshots\": [");
  for (size_t i = 0; i < in->nb_snapshots; i++) {
    const struct qcow2_snapshot_info *s = &in->snapshots[i];
    fprintf(f, "%s\n        {\n", i ? "," : "");
    if (s->has_icount)
      fprintf(f, "            \"icount\": %" PRIu64 ",\n", s->icount);
    fprintf(f,
            "            \"vm-clock-nsec\": %" PRIu64 ",\n"
            "            \"name\": ",
            s->vm_clock_nsec % 1000000000);
    json_str(f, s->name);
    fprintf(f,
            ",\n            \"date-sec\": %u,\n"
            "            \"date-nsec\": %u,\n"
            "            \"vm-clock-sec\": %" PRIu64 ",\n"
            "            \"id\": ",
            s->date_sec, s->date_nsec, s->vm_clock_nsec / 1000000000);
    json_str(f, s->id);
    fprintf(f, ",\n            \"vm-state-size\": %" PRIu64 "\n        }",
            s->vm_state_size);
  }
  fprintf(f, "\n    ]");
}

static void json_bitmaps(FILE *f, const struct qcow2_info *in)
{
  fprintf(f, ",\n            \"bitmaps\": [");
  for (size_t i = 0; i < in->nb_bitmaps; i++) {
    const struct qcow2_bitmap_info *b = &in->bitmaps[i];
    fprintf(f, "%s\n                {\n                    \"flags\": [",
            i ? "," : "");
    const char *sep = "";
    if (b->flags & QCOW2_BITMAP_IN_USE) {
      fprintf(f, "\n                        \"in-use\"");
      sep = ",";
    }
    if (b->flags & QCOW2_BITMAP_AUTO)
      fprintf(f, "%s\n                        \"auto\"", sep);
    fprintf(f, "\n                    ],\n                    \"name\": ");
    json_str(f, b->name);
    fprintf(f,
            ",\n                    \"granularity\": %" PRIu64
            "\n                }",
            b->granularity);
  }
  fprintf(f, "\n            ]");
}

static void json_specific(FILE *f, const struct qcow2_info *in)
{
  fprintf(f,
          ",\n    \"format-specific\": {\n        \"type\": \"qcow2\",\n"
          "        \"data\": {\n            \"compat\": \"%s\",\n"
          "            \"compression-type\": \"%s\"",
          in->version >= 3 ? "1.1" : "0.10", in->compression);
  if (in->version >= 3) {
    fprintf(f, ",\n            \"lazy-refcounts\": %s",
            in->lazy_refcounts ? "true" : "false");
    if (in->nb_bitmaps)
      json_bitmaps(f, in);
  }
  fprintf(f, ",\n            \"refcount-bits\": %u", in->refcount_bits);
  if (in->data_file) {
    fprintf(f, ",\n            \"data-file\": ");
    json_str(f, in->data_file);
    fprintf(f, ",\n            \"data-file-raw\": %s",
            in->data_file_raw ? "true" : "false");
  }
  if (in->version >= 3)
    fprintf(f,
            ",\n            \"corrupt\": %s,\n"
            "            \"extended-l2\": %s",
            in->corrupt ? "true" : "false", in->extended_l2 ? "true" : "false");
  fprintf(f, "\n        }\n    }");
}

static void json_one(FILE *f, const struct qcow2_info *in)
{
  bool q = strcmp(in->format, "qcow2") == 0;
  fprintf(f, "{\n    \"virtual-size\": %" PRIu64 ",\n    \"filename\": ",
          in->virtual_size);
  json_str(f, in->filename);
  if (q)
    fprintf(f, ",\n    \"cluster-size\": %u", in->cluster_size);
  fprintf(f, ",\n    \"format\": \"%s\",\n    \"actual-size\": %" PRIu64,
          in->format, in->actual_size);
  if (q && in->nb_snapshots)
    json_snapshots(f, in);
  if (q)
    json_specific(f, in);
  if (in->backing_file) {
    fprintf(f, ",\n    \"backing-filename\": ");
    json_str(f, in->backing_file);
    fprintf(f, ",\n    \"full-backing-filename\": ");
    json_str(f, in->full_backing_filename);
    if (in->backing_format) {
      fprintf(f, ",\n    \"backing-filename-format\": ");
      json_str(f, in->backing_format);
    }
  }
  fprintf(f, ",\n    \"dirty-flag\": %s\n}", q && in->dirty ? "true" : "false");
}

static void human_snapshots(FILE *f, const struct qcow2_info *in)
{
  fprintf(f, "Snapshot list:\n%-10s%-17s%8s%20s%13s%11s\n", "ID", "TAG",
          "VM SIZE", "DATE", "VM CLOCK", "ICOUNT");
  for (size_t i = 0; i < in->nb_snapshots; i++) {
    const struct qcow2_snapshot_info *s = &in->snapshots[i];
    char date[32], vm[32], clock[32], ic[32] = "";
    time_t t = s->date_sec;
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &tm);
    human_size(vm, sizeof vm, s->vm_state_size);
    uint64_t secs = s->vm_clock_nsec / 1000000000;
    snprintf(clock, sizeof clock,
             "%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%03" PRIu64,
             secs / 3600, secs / 60 % 60, secs % 60,
             s->vm_clock_nsec / 1000000 % 1000);
    if (s->has_icount)
      snprintf(ic, sizeof ic, "%" PRIu64, s->icount);
    fprintf(f, "%-9s %-16s %8s %19s %12s %10s\n", s->id, s->name, vm, date,
            clock, ic);
  }
}

static void human_specific(FILE *f, const struct qcow2_info *in)
{
  fprintf(f, "Format specific information:\n    compat: %s\n",
          in->version >= 3 ? "1.1" : "0.10");
  fprintf(f, "    compression type: %s\n", in->compression);
  if (in->version >= 3)
    fprintf(f, "    lazy refcounts: %s\n",
            in->lazy_refcounts ? "true" : "false");
  if (in->nb_bitmaps) {
    fprintf(f, "    bitmaps:\n");
    for (size_t i = 0; i < in->nb_bitmaps; i++) {
      const struct qcow2_bitmap_info *b = &in->bitmaps[i];
      int k = 0;
      fprintf(f, "        [%zu]:\n            flags:\n", i);
      if (b->flags & QCOW2_BITMAP_IN_USE)
        fprintf(f, "                [%d]: in-use\n", k++);
      if (b->flags & QCOW2_BITMAP_AUTO)
        fprintf(f, "                [%d]: auto\n", k++);
      fprintf(f, "            name: %s\n            granularity: %" PRIu64 "\n",
              b->name, b->granularity);
    }
  }
  fprintf(f, "    refcount bits: %u\n", in->refcount_bits);
  if (in->data_file)
    fprintf(f, "    data file: %s\n    data file raw: %s\n", in->data_file,
            in->data_file_raw ? "true" : "false");
  if (in->version >= 3)
    fprintf(f, "    corrupt: %s\n    extended l2: %s\n",
            in->corrupt ? "true" : "false", in->extended_l2 ? "true" : "false");
}

static void human_one(FILE *f, const struct qcow2_info *in)
{
  char vs[32], ds[32];
  human_size(vs, sizeof vs, in->virtual_size);
  human_size(ds, sizeof ds, in->actual_size);
  fprintf(f,
          "image: %s\nfile format: %s\nvirtual size: %s (%" PRIu64
          " bytes)\ndisk size: %s\n",
          in->filename, in->format, vs, in->virtual_size, ds);
  if (strcmp(in->format, "qcow2"))
    return;
  fprintf(f, "cluster_size: %u\n", in->cluster_size);
  if (in->backing_file) {
    fprintf(f, "backing file: %s", in->backing_file);
    if (strcmp(in->backing_file, in->full_backing_filename))
      fprintf(f, " (actual path: %s)", in->full_backing_filename);
    fprintf(f, "\n");
    if (in->backing_format)
      fprintf(f, "backing file format: %s\n", in->backing_format);
  }
  if (in->dirty)
    fprintf(f, "cleanly shut down: no\n");
  if (in->nb_snapshots)
    human_snapshots(f, in);
  human_specific(f, in);
}

int img_info(const struct img_args *a)
{
  struct qcow2_image *img;
  if (img_open(a, &img) < 0)
    return 1;
  const struct qcow2_image *l = img;
  if (a->json && a->backing_chain)
    printf("[\n");
  for (bool first = true; l; l = qcow2_backing(l), first = false) {
    if (!first && a->json)
      printf(",\n");
    else if (!first)
      printf("\n");
    if (a->json)
      json_one(stdout, qcow2_get_info(l));
    else
      human_one(stdout, qcow2_get_info(l));
    if (!a->backing_chain)
      break;
  }
  printf(a->json && a->backing_chain ? "\n]\n" : a->json ? "\n" : "");
  qcow2_close(img);
  return 0;
}
