/* qnbd-img: inspect images from the command line (info, map, dump),
 * with output matching qemu-img's. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "img.h"
#include "util/log.h"

/* create and check parse their own arguments (argv[0] is the command):
 * core/tools/create.c and check.c. */
int img_create(int argc, char **argv);
int img_check(int argc, char **argv);

static void usage(FILE *f)
{
  fprintf(
      f,
      "Usage:\n"
      "  qnbd-img info [-f FMT] [--output=human|json] [--backing-chain] FILE\n"
      "  qnbd-img map [-f FMT] [--output=human|json] FILE\n"
      "  qnbd-img dump [-f FMT] [-l SNAPSHOT] FILE   (guest bytes to "
      "stdout)\n"
      "  qnbd-img create [-f qcow2|raw] [-o OPTIONS] [-b BACKING [-F FMT]] "
      "FILE [SIZE]\n"
      "  qnbd-img check [-r leaks|all] [--output=human|json] FILE\n"
      "FMT is qcow2 or raw; by default the format is probed.\n");
}

void json_str(FILE *f, const char *s)
{
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(f, "\\%c", *p);
    else if (*p < 0x20)
      fprintf(f, "\\u%04x", *p);
    else
      fputc(*p, f);
  }
  fputc('"', f);
}

void human_size(char *buf, size_t len, uint64_t v)
{
  static const char *const sfx[] = {"B",   "KiB", "MiB", "GiB",
                                    "TiB", "PiB", "EiB"};
  int e;
  frexp((double)v / (1000 / 1024.0), &e);
  int i = e > 0 ? (e - 1) / 10 : 0;
  if (i > 6)
    i = 6;
  snprintf(buf, len, "%0.3g %s", (double)v / (double)(1ull << (i * 10)),
           sfx[i]);
}

int img_open(const struct img_args *a, struct qcow2_image **img)
{
  struct qcow2_open_opts o = {.readonly = true, .snapshot = a->snapshot};
  int r = qcow2_open_format(a->file, a->format, &o, img);
  if (r < 0)
    fprintf(stderr, "qnbd-img: %s: cannot open: %s\n", a->file, strerror(-r));
  return r;
}

/* dump: the guest bytes, for comparing with qemu-img convert -O raw. */
static int img_dump(const struct img_args *a)
{
  struct qcow2_image *img;
  if (img_open(a, &img) < 0)
    return 1;
  uint64_t size = qcow2_size(img), chunk = 1 << 20;
  char *buf = malloc(chunk);
  int rc = buf ? 0 : 1;
  for (uint64_t off = 0; !rc && off < size; off += chunk) {
    uint64_t n = size - off < chunk ? size - off : chunk;
    int r = qcow2_pread(img, buf, n, off);
    if (r < 0) {
      fprintf(stderr, "qnbd-img: read at %llu: %s\n", (unsigned long long)off,
              strerror(-r));
      rc = 1;
    } else if (fwrite(buf, 1, n, stdout) != n)
      rc = 1;
  }
  free(buf);
  qcow2_close(img);
  return rc;
}

int main(int argc, char **argv)
{
  if (argc < 2) {
    usage(stderr);
    return 1;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "create") == 0)
    return img_create(argc - 1, argv + 1);
  if (strcmp(cmd, "check") == 0)
    return img_check(argc - 1, argv + 1);
  struct img_args a = {0};
  static const struct option longopts[] = {
      {"output", required_argument, NULL, 'o'},
      {"backing-chain", no_argument, NULL, 'b'},
      {"snapshot", required_argument, NULL, 'l'},
      {"format", required_argument, NULL, 'f'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  int c;
  optind = 2;
  while ((c = getopt_long(argc, argv, "f:l:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'o':
      if (strcmp(optarg, "json") && strcmp(optarg, "human")) {
        fprintf(stderr, "qnbd-img: --output must be human or json\n");
        return 1;
      }
      a.json = strcmp(optarg, "json") == 0;
      break;
    case 'b':
      a.backing_chain = true;
      break;
    case 'l':
      a.snapshot = optarg;
      break;
    case 'f':
      a.format = optarg;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 1;
    }
  }
  if (optind != argc - 1) {
    usage(stderr);
    return 1;
  }
  a.file = argv[optind];
  log_set_level(LOG_LVL_WARN);
  if (strcmp(cmd, "info") == 0)
    return img_info(&a);
  if (strcmp(cmd, "map") == 0)
    return img_map(&a);
  if (strcmp(cmd, "dump") == 0)
    return img_dump(&a);
  fprintf(stderr, "qnbd-img: unknown command '%s'\n", cmd);
  usage(stderr);
  return 1;
}
