/* The qnbd command line: options spelled as qemu-nbd and nbdkit spell
 * them where they agree, parsed into struct config. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "util/checked.h"
#include "util/log.h"

#ifdef QNBD_HAVE_NBDKIT_HOST
#include "nbdkit-host/host.h"
#endif

enum {
  OPT_DESCRIPTION = 256,
  OPT_EXPORT,
  OPT_HANDSHAKE_TIMEOUT,
  OPT_THREADS,
  OPT_FORK,
  OPT_PID_FILE,
  OPT_PLUGIN,
  OPT_SNAPSHOT,
  OPT_CACHE_SIZE,
  OPT_VERSION,
  OPT_CONFIG,
  OPT_LOG,
};

static const char short_opts[] = "+p:b:U:sx:rf:e:vD:thV";
static const struct option long_opts[] = {
    {"port", required_argument, NULL, 'p'},
    {"bind", required_argument, NULL, 'b'},
    {"socket", required_argument, NULL, 'U'},
    {"unix", required_argument, NULL, 'U'},
    {"stdio", no_argument, NULL, 's'},
    {"single", no_argument, NULL, 's'},
    {"export-name", required_argument, NULL, 'x'},
    {"description", required_argument, NULL, OPT_DESCRIPTION},
    {"export", required_argument, NULL, OPT_EXPORT},
    {"read-only", no_argument, NULL, 'r'},
    {"readonly", no_argument, NULL, 'r'},
    {"format", required_argument, NULL, 'f'},
    {"max-connections", required_argument, NULL, 'e'},
    {"shared", required_argument, NULL, 'e'},
    {"handshake-timeout", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"fork", no_argument, NULL, OPT_FORK},
    {"pid-file", required_argument, NULL, OPT_PID_FILE},
    {"pidfile", required_argument, NULL, OPT_PID_FILE},
    {"plugin", required_argument, NULL, OPT_PLUGIN},
    {"snapshot", required_argument, NULL, OPT_SNAPSHOT},
    {"cache-size", required_argument, NULL, OPT_CACHE_SIZE},
    {"verbose", no_argument, NULL, 'v'},
    {"debug", required_argument, NULL, 'D'},
    {"persistent", no_argument, NULL, 't'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"log", required_argument, NULL, OPT_LOG},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *f)
{
  fprintf(
      f, "Usage: qnbd [OPTIONS] FILE\n"
         "       qnbd [OPTIONS] -f memory SIZE\n"
         "       qnbd [OPTIONS] --plugin NAME|PATH [key=value|value ...]\n"
         "       qnbd [OPTIONS] --config FILE\n"
         "Serve FILE (raw or qcow2) over the NBD protocol.\n\n"
         "  -p, --port PORT          TCP port (default 10809)\n"
         "  -b, --bind ADDR          listen address (default localhost)\n"
         "  -U, --socket PATH        listen on a Unix socket instead\n"
         "  -s, --stdio              one connection on stdin/stdout\n"
         "  -x, --export-name NAME   export name (default \"\")\n"
         "      --description TEXT   export description\n"
         "      --export NAME=FILE   another export (repeatable)\n"
         "  -r, --read-only          refuse writes\n"
         "  -f, --format FMT         raw, qcow2 or memory (default: probe)\n"
         "      --snapshot NAME|ID   serve a qcow2 internal snapshot\n"
         "      --cache-size BYTES   qcow2 metadata cache size\n"
         "  -e, --max-connections N  limit concurrent clients\n"
         "      --handshake-timeout SECONDS   (default 30)\n"
         "      --threads N          worker threads (default 2 per CPU, >= 4)\n"
         "      --fork               run in the background when ready\n"
         "      --pid-file PATH      write the server's pid to PATH\n"
         "      --plugin NAME|PATH   serve an nbdkit plugin\n"
         "      --config FILE        the exports of FILE (SIGHUP reloads)\n"
         "      --log TARGET         stderr, syslog, journal or auto\n"
         "  -D, --debug NAME.FLAG=N  set a plugin debug flag\n"
         "  -v, --verbose            debug messages\n"
         "  -t, --persistent         keep serving (always on)\n"
         "  -h, --help               this text\n"
         "  -V, --version            print the version\n");
}

/* Parse a size with an optional k/m/g/t/p/e suffix (1024-based). */
static int parse_size(const char *s, uint64_t *out)
{
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *s == '-')
    return -1;
  unsigned shift = 0;
  switch (*end) {
  case 'b':
  case 'B':
  case '\0':
    break;
  case 'k':
  case 'K':
    shift = 10;
    break;
  case 'm':
  case 'M':
    shift = 20;
    break;
  case 'g':
  case 'G':
    shift = 30;
    break;
  case 't':
  case 'T':
    shift = 40;
    break;
  case 'p':
  case 'P':
    shift = 50;
    break;
  case 'e':
  case 'E':
    shift = 60;
    break;
  default:
    return -1;
  }
  if (*end && end[1] && strcmp(end + 1, "iB") && strcmp(end + 1, "B"))
    return -1;
  if (shift && v > (UINT64_MAX >> shift))
    return -1;
  *out = (uint64_t)v << shift;
  return 0;
}

static int parse_uint(const char *opt, const char *s, unsigned max,
                      unsigned *out)
{
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || end == s || *end || *s == '-' || v > max) {
    fprintf(stderr, "qnbd: %s: invalid number '%s'\n", opt, s);
    return -1;
  }
  *out = (unsigned)v;
  return 0;
}

int options_size(const char *s, uint64_t *out)
{
  return parse_size(s, out);
}

static int parse_log_target(const char *s, enum log_target *out)
{
  static const char *const names[] = {"auto", "stderr", "syslog", "journal"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (!strcmp(s, names[i])) {
      *out = (enum log_target)i;
      return 0;
    }
  fprintf(stderr, "qnbd: --log: unknown target '%s' (%s)\n", s,
          "auto, stderr, syslog or journal");
  return -1;
}

/* --export NAME=FILE adds an export sharing the main one's settings. */
static int add_extra_export(struct config *cfg, const char *arg)
{
  const char *eq = strchr(arg, '=');
  if (!eq || eq == arg || !eq[1]) {
    fprintf(stderr, "qnbd: --export: expected NAME=FILE, got '%s'\n", arg);
    return -1;
  }
  struct export_config ec = {0};
  ec.name = strndup(arg, (size_t)(eq - arg));
  ec.path = strdup(eq + 1);
  if (!ec.name || !ec.path || export_config_vec_append(&cfg->exports, ec) < 0) {
    fprintf(stderr, "qnbd: out of memory\n");
    return -1;
  }
  return 0;
}

static int handle_opt(int c, struct config *cfg, struct export_config *main)
{
  uint64_t size;

  switch (c) {
  case 'p':
    cfg->port = optarg;
    break;
  case 'b':
    cfg->bind_addr = optarg;
    break;
  case 'U':
    cfg->unix_path = optarg;
    break;
  case 's':
    cfg->stdio = true;
    break;
  case 'x':
    main->name = optarg;
    break;
  case OPT_DESCRIPTION:
    main->description = optarg;
    break;
  case OPT_EXPORT:
    return add_extra_export(cfg, optarg);
  case 'r':
    main->readonly = true;
    break;
  case 'f':
    if (strcmp(optarg, "raw") && strcmp(optarg, "qcow2") &&
        strcmp(optarg, "memory")) {
      fprintf(stderr, "qnbd: -f: unknown format '%s' (raw, qcow2, memory)\n",
              optarg);
      return -1;
    }
    main->format = optarg;
    break;
  case 'e':
    return parse_uint("--max-connections", optarg, 1u << 20,
                      &cfg->max_connections);
  case OPT_HANDSHAKE_TIMEOUT:
    return parse_uint("--handshake-timeout", optarg, 86400,
                      &cfg->handshake_timeout);
  case OPT_THREADS:
    if (parse_uint("--threads", optarg, 1024, &cfg->threads) < 0)
      return -1;
    if (cfg->threads == 0) {
      fprintf(stderr, "qnbd: --threads must be at least 1\n");
      return -1;
    }
    break;
  case OPT_FORK:
    cfg->fork = true;
    break;
  case OPT_PID_FILE:
    cfg->pid_file = optarg;
    break;
  case OPT_PLUGIN:
    main->plugin = optarg;
    break;
  case OPT_SNAPSHOT:
    main->snapshot = optarg;
    break;
  case OPT_CACHE_SIZE:
    if (parse_size(optarg, &size) < 0) {
      fprintf(stderr, "qnbd: --cache-size: invalid size '%s'\n", optarg);
      return -1;
    }
    main->cache_size = size;
    break;
  case 'v':
    cfg->verbose = true;
    break;
  case 'D':
#ifdef QNBD_HAVE_NBDKIT_HOST
    if (nbdkit_host_debug_flag(optarg) < 0)
      return -1;
    break;
#else
    fprintf(stderr, "qnbd: -D: this build has no nbdkit plugin host\n");
    return -1;
#endif
  case 't':
    break;
  case OPT_CONFIG:
    cfg->config_file = optarg;
    break;
  case OPT_LOG:
    return parse_log_target(optarg, &cfg->log);
  case 'h':
    usage(stdout);
    return 1;
  case OPT_VERSION:
  case 'V':
    printf("qnbd %s\n", QNBD_VERSION);
    return 1;
  default:
    usage(stderr);
    return -1;
  }
  return 0;
}

/* Validate combinations and fill defaults. */
static int check_config(struct config *cfg)
{
  struct export_config *main = &cfg->exports.ptr[0];
  int n = 0;

  n += cfg->unix_path != NULL;
  n += cfg->stdio;
  if (n > 1 || (n && (cfg->port || cfg->bind_addr))) {
    fprintf(stderr, "qnbd: choose one of -p/-b, -U and -s\n");
    return -1;
  }
  if (cfg->stdio && cfg->fork) {
    fprintf(stderr, "qnbd: --fork cannot be used with -s\n");
    return -1;
  }
  if (cfg->config_file) {
    /* The file describes every export; nothing may compete with it. */
    if (main->path || main->plugin || main->name[0] || main->description ||
        main->readonly || main->format || main->snapshot || main->cache_size ||
        cfg->exports.len > 1) {
      fprintf(stderr,
              "qnbd: --config: exports and their settings belong in "
              "the file (no FILE, --plugin, -x, -r, -f, --export...)\n");
      return -1;
    }
    if (!cfg->port)
      cfg->port = "10809";
    return 0;
  }
  if (!main->plugin && !main->path) {
    fprintf(stderr, "qnbd: no FILE given (see qnbd --help)\n");
    return -1;
  }
  if (!cfg->port)
    cfg->port = "10809";
  for (size_t i = 1; i < cfg->exports.len; i++) {
    struct export_config *e = &cfg->exports.ptr[i];
    e->readonly = main->readonly;
    e->format =
        main->format && strcmp(main->format, "memory") ? main->format : NULL;
    e->cache_size = main->cache_size;
    for (size_t j = 0; j < i; j++)
      if (!strcmp(cfg->exports.ptr[j].name, e->name)) {
        fprintf(stderr, "qnbd: export name '%s' used twice\n", e->name);
        return -1;
      }
  }
  return 0;
}

int options_parse(int argc, char **argv, struct config *cfg)
{
  struct export_config main = {.name = ""};
  int c, r;

  /* Two workers per CPU: more only adds context switches for file
   * backends (measured in tests/bench); slow plugins may want more. */
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned threads = ncpu > 2 ? (unsigned)MIN(ncpu * 2, 64) : 4;
  *cfg = (struct config){.handshake_timeout = 30, .threads = threads};
  /* Reserve slot 0 for the main export; extra exports follow. */
  if (export_config_vec_append(&cfg->exports, main) < 0)
    return -1;
  /* Options may follow FILE (as with qemu-nbd); after --plugin NAME
   * everything left is the plugin's parameters (as with nbdkit). */
  for (;;) {
    c = getopt_long(argc, argv, short_opts, long_opts, NULL);
    if (c != -1) {
      r = handle_opt(c, cfg, &main);
      if (r != 0)
        return r;
      continue;
    }
    if (optind >= argc || main.plugin)
      break;
    if (main.path) {
      fprintf(stderr, "qnbd: too many arguments (one FILE expected)\n");
      return -1;
    }
    main.path = argv[optind++];
  }
  if (main.plugin) {
    main.plugin_argc = argc - optind;
    main.plugin_argv = argv + optind;
  }
  cfg->exports.ptr[0] = main;
  return check_config(cfg);
}
