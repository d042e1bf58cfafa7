/* qnbd-img create: parse qemu-img's create options and make the image. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "img.h"
#include "util/log.h"

/* QEMU's size syntax: a number, maybe fractional, with an optional
 * B/K/M/G/T/P/E suffix (powers of 1024). */
static int parse_size(const char *s, uint64_t *out)
{
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || v < 0 || !isfinite(v))
    return -EINVAL;
  static const char units[] = "BKMGTPE";
  double mul = 1;
  if (*end) {
    const char *u = strchr(units, *end & ~0x20);
    if (!u || end[1])
      return -EINVAL;
    mul = ldexp(1, (int)(u - units) * 10);
  }
  double bytes = v * mul;
  if (bytes >= 18446744073709549568.0 || bytes != floor(bytes))
    return -EINVAL;
  *out = (uint64_t)bytes;
  return 0;
}

static int parse_bool(const char *v, bool *out)
{
  if (!strcmp(v, "on") || !strcmp(v, "true"))
    *out = true;
  else if (!strcmp(v, "off") || !strcmp(v, "false"))
    *out = false;
  else
    return -EINVAL;
  return 0;
}

static int log2_exact(uint64_t v)
{
  if (!v || (v & (v - 1)))
    return -1;
  return __builtin_ctzll(v);
}

struct create_cli {
  struct qcow2_create_opts o;
  bool have_size;
  const char *qcow2_only; /* an option raw images do not take */
};

static int set_opt(struct create_cli *c, const char *k, const char *v)
{
  struct qcow2_create_opts *o = &c->o;
  uint64_t n;
  int l;
  if (strcmp(k, "size") && strcmp(k, "preallocation"))
    c->qcow2_only = k;
  if (!strcmp(k, "compat")) {
    if (!strcmp(v, "0.10") || !strcmp(v, "v2"))
      o->version = 2;
    else if (!strcmp(v, "1.1") || !strcmp(v, "v3"))
      o->version = 3;
    else
      return -EINVAL;
  } else if (!strcmp(k, "cluster_size")) {
    if (parse_size(v, &n) < 0 || (l = log2_exact(n)) < 0)
      return -EINVAL;
    o->cluster_bits = (unsigned)l;
  } else if (!strcmp(k, "refcount_bits")) {
    if (parse_size(v, &n) < 0 || (l = log2_exact(n)) < 0 || l > 6)
      return -EINVAL;
    o->refcount_order = (unsigned)l;
  } else if (!strcmp(k, "lazy_refcounts"))
    return parse_bool(v, &o->lazy_refcounts);
  else if (!strcmp(k, "extended_l2"))
    return parse_bool(v, &o->extended_l2);
  else if (!strcmp(k, "data_file_raw"))
    return parse_bool(v, &o->data_file_raw);
  else if (!strcmp(k, "compression_type")) {
    if (!strcmp(v, "zlib"))
      o->compression_type = 0;
    else if (!strcmp(v, "zstd"))
      o->compression_type = 1;
    else
      return -EINVAL;
  } else if (!strcmp(k, "backing_file"))
    o->backing_file = v;
  else if (!strcmp(k, "backing_fmt"))
    o->backing_format = v;
  else if (!strcmp(k, "data_file"))
    o->data_file = v;
  else if (!strcmp(k, "preallocation")) {
    static const char *const m[] = {"off", "metadata", "falloc", "full"};
    for (l = 0; l < 4 && strcmp(v, m[l]); l++)
      ;
    if (l == 4)
      return -EINVAL;
    o->preallocation = (enum qcow2_prealloc)l;
  } else if (!strcmp(k, "size")) {
    if (parse_size(v, &o->size) < 0)
      return -EINVAL;
    c->have_size = true;
  } else {
    fprintf(stderr, "qnbd-img: invalid option '%s'\n", k);
    return -ENOENT;
  }
  return 0;
}

/* "-o key=value,key=value": the string is modified in place. */
static int parse_o(struct create_cli *c, char *s)
{
  char *save = NULL;
  for (char *kv = strtok_r(s, ",", &save); kv;
       kv = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(kv, '=');
    if (!eq) {
      fprintf(stderr, "qnbd-img: option '%s' needs a value\n", kv);
      return -EINVAL;
    }
    *eq = 0;
    int r = set_opt(c, kv, eq + 1);
    if (r == -EINVAL)
      fprintf(stderr, "qnbd-img: invalid value '%s' for option '%s'\n", eq + 1,
              kv);
    if (r < 0)
      return r;
  }
  return 0;
}

/* The size of the backing file, named relative to the new image. */
static int backing_size(const char *image, const struct qcow2_create_opts *o,
                        uint64_t *size)
{
  char *full = NULL;
  const char *slash = strrchr(image, '/');
  if (o->backing_file[0] != '/' && slash &&
      asprintf(&full, "%.*s/%s", (int)(slash - image), image, o->backing_file) <
          0)
    return -ENOMEM;
  const char *p = full ? full : o->backing_file;
  struct qcow2_open_opts oo = {.readonly = true};
  struct qcow2_image *img;
  int r = qcow2_open_format(p, o->backing_format, &oo, &img);
  if (r < 0)
    fprintf(stderr, "qnbd-img: could not open backing file %s: %s\n", p,
            strerror(-r));
  else {
    *size = qcow2_size(img);
    qcow2_close(img);
  }
  free(full);
  return r;
}

static int create_args(int argc, char **argv, struct create_cli *c,
                       const char **fmt)
{
  int ch;
  optind = 1;
  while ((ch = getopt(argc, argv, "f:o:b:F:h")) != -1) {
    switch (ch) {
    case 'f':
      *fmt = optarg;
      break;
    case 'o':
      if (parse_o(c, optarg) < 0)
        return -EINVAL;
      break;
    case 'b':
      c->o.backing_file = optarg;
      break;
    case 'F':
      c->o.backing_format = optarg;
      break;
    default:
      fprintf(stderr, "Usage: qnbd-img create [-f qcow2|raw] [-o OPTIONS] "
                      "[-b BACKING [-F FMT]] FILE [SIZE]\n");
      return -EINVAL;
    }
  }
  if (optind >= argc || argc - optind > 2) {
    fprintf(stderr, "qnbd-img: create needs FILE [SIZE]\n");
    return -EINVAL;
  }
  if (argc - optind == 2) {
    if (parse_size(argv[optind + 1], &c->o.size) < 0) {
      fprintf(stderr, "qnbd-img: invalid image size '%s'\n", argv[optind + 1]);
      return -EINVAL;
    }
    c->have_size = true;
  }
  return optind;
}

int img_create(int argc, char **argv); /* called by qnbd-img.c */
int img_create(int argc, char **argv)
{
  struct create_cli c = {
      .o = {.version = 3, .cluster_bits = 16, .refcount_order = 4}};
  const char *fmt = "qcow2";
  log_set_level(LOG_LVL_WARN);
  int i = create_args(argc, argv, &c, &fmt);
  if (i < 0)
    return 1;
  const char *file = argv[i];
  c.o.raw = !strcmp(fmt, "raw");
  if (!c.o.raw && strcmp(fmt, "qcow2")) {
    fprintf(stderr, "qnbd-img: unsupported format '%s'\n", fmt);
    return 1;
  }
  if (c.o.backing_file && c.o.raw) {
    fprintf(stderr, "qnbd-img: raw images have no backing file\n");
    return 1;
  }
  if (c.o.raw && c.qcow2_only) {
    fprintf(stderr, "qnbd-img: invalid parameter '%s' for format raw\n",
            c.qcow2_only);
    return 1;
  }
  if (c.o.backing_file && !c.o.backing_format) {
    fprintf(stderr,
            "qnbd-img: %s: Backing file specified without backing "
            "format\n",
            file);
    return 1;
  }
  if (!c.have_size && c.o.backing_file &&
      backing_size(file, &c.o, &c.o.size) < 0)
    return 1;
  if (!c.have_size && !c.o.backing_file) {
    fprintf(stderr, "qnbd-img: %s: Image creation needs a size parameter\n",
            file);
    return 1;
  }
  int r = qcow2_create(file, &c.o);
  if (r < 0) {
    fprintf(stderr, "qnbd-img: %s: cannot create: %s\n", file, strerror(-r));
    return 1;
  }
  printf("Formatting '%s', fmt=%s size=%llu\n", file, fmt,
         (unsigned long long)c.o.size);
  return 0;
}
