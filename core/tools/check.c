/* qnbd-img check: qemu-img check's report, JSON and exit codes for the
 * qcow2 refcount check (core/qcow2/check.c), with optional repair. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "img.h"
#include "util/log.h"

static void print_human(const char *file, const struct qcow2_check_result *r,
                        bool repaired)
{
  if (repaired) {
    printf("The following inconsistencies were found and repaired:\n\n"
           "    %llu leaked clusters\n    %llu corruptions\n\n"
           "Double checking the fixed image now...\n",
           (unsigned long long)r->leaks_fixed,
           (unsigned long long)r->corruptions_fixed);
  }
  if (!r->corruptions && !r->leaks && !r->check_errors)
    printf("No errors were found on the image.\n");
  if (r->corruptions)
    printf("\n%llu errors were found on the image.\n"
           "Data may be corrupted, or further writes to the image may "
           "corrupt it.\n",
           (unsigned long long)r->corruptions);
  if (r->leaks)
    printf("\n%llu leaked clusters were found on the image.\n"
           "This means waste of disk space, but no harm to data.\n",
           (unsigned long long)r->leaks);
  if (r->check_errors)
    printf("\n%llu internal errors have occurred during the check.\n",
           (unsigned long long)r->check_errors);
  if (r->total_clusters && r->allocated_clusters) {
    double a = (double)r->allocated_clusters;
    printf("%llu/%llu = %0.2f%% allocated, %0.2f%% fragmented, %0.2f%% "
           "compressed clusters\n",
           (unsigned long long)r->allocated_clusters,
           (unsigned long long)r->total_clusters,
           a * 100.0 / (double)r->total_clusters,
           (double)r->fragmented_clusters * 100.0 / a,
           (double)r->compressed_clusters * 100.0 / a);
  }
  if (r->image_end_offset)
    printf("Image end offset: %llu\n", (unsigned long long)r->image_end_offset);
  (void)file;
}

/* The fields and order of qemu-img check --output=json (optional
 * counters only when non-zero). */
static void print_json(const char *file, const struct qcow2_check_result *r)
{
  struct {
    const char *k;
    uint64_t v;
    bool always;
  } f[] = {{"image-end-offset", r->image_end_offset, false},
           {"compressed-clusters", r->compressed_clusters, false},
           {"total-clusters", r->total_clusters, false},
           {"corruptions", r->corruptions, false},
           {"corruptions-fixed", r->corruptions_fixed, false},
           {"check-errors", r->check_errors, true},
           {"leaks", r->leaks, false},
           {"leaks-fixed", r->leaks_fixed, false},
           {"allocated-clusters", r->allocated_clusters, false}};
  printf("{\n");
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
    if (f[i].always || f[i].v)
      printf("    \"%s\": %llu,\n", f[i].k, (unsigned long long)f[i].v);
  printf("    \"filename\": ");
  json_str(stdout, file);
  printf(",\n    \"format\": \"qcow2\"");
  if (r->fragmented_clusters)
    printf(",\n    \"fragmented-clusters\": %llu",
           (unsigned long long)r->fragmented_clusters);
  printf("\n}\n");
}

static int check_args(int argc, char **argv, int *fix, bool *json,
                      const char **fmt)
{
  static const struct option longopts[] = {
      {"output", required_argument, NULL, 'o'},
      {"repair", required_argument, NULL, 'r'},
      {"format", required_argument, NULL, 'f'},
      {NULL, 0, NULL, 0}};
  int ch;
  optind = 1;
  while ((ch = getopt_long(argc, argv, "f:r:", longopts, NULL)) != -1) {
    if (ch == 'o' && (!strcmp(optarg, "json") || !strcmp(optarg, "human")))
      *json = !strcmp(optarg, "json");
    else if (ch == 'r' && !strcmp(optarg, "leaks"))
      *fix = QCOW2_FIX_LEAKS;
    else if (ch == 'r' && !strcmp(optarg, "all"))
      *fix = QCOW2_FIX_LEAKS | QCOW2_FIX_ERRORS;
    else if (ch == 'f')
      *fmt = optarg;
    else {
      fprintf(stderr, "Usage: qnbd-img check [-f qcow2] [-r leaks|all] "
                      "[--output=human|json] FILE\n");
      return -EINVAL;
    }
  }
  if (optind != argc - 1) {
    fprintf(stderr, "qnbd-img: check needs one FILE\n");
    return -EINVAL;
  }
  return optind;
}

int img_check(int argc, char **argv); /* called by qnbd-img.c */
int img_check(int argc, char **argv)
{
  int fix = 0;
  bool json = false;
  const char *fmt = NULL;
  int i = check_args(argc, argv, &fix, &json, &fmt);
  if (i < 0)
    return 1;
  const char *file = argv[i];
  log_set_level(LOG_LVL_WARN);
  if ((fmt && strcmp(fmt, "qcow2")) || (!fmt && !qcow2_probe(file))) {
    fprintf(stderr,
            "qnbd-img: %s: this image format does not support "
            "checks\n",
            file);
    return 63; /* as qemu-img for a format without checks */
  }
  struct qcow2_check_result res, res2;
  int r = qcow2_check(file, fix, &res);
  if (r == 0 && fix && (res.leaks_fixed || res.corruptions_fixed)) {
    /* Report the image as it is now, with what was repaired. */
    r = qcow2_check(file, 0, &res2);
    res2.leaks_fixed = res.leaks_fixed;
    res2.corruptions_fixed = res.corruptions_fixed;
    if (r == 0 && !json)
      print_human(file, &res2, true);
    res = res2;
  } else if (r == 0 && !json)
    print_human(file, &res, false);
  if (r < 0) {
    fprintf(stderr, "qnbd-img: %s: check failed: %s\n", file, strerror(-r));
    return 1;
  }
  if (json)
    print_json(file, &res);
  if (res.check_errors)
    return 1;
  return res.corruptions ? 2 : res.leaks ? 3 : 0;
}
