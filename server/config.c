/* The exports configuration file (--config): an INI-like list of
 * "[export NAME]" sections of "key = value" lines, parsed into struct
 * export_config with every error reported as FILE:LINE.  The format is
 * documented in qnbd(8) and systemd/exports.conf.example. */
#define _GNU_SOURCE /* getline */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"
#include "util/log.h"

#define CONFIG_MAX_LINE   4096
#define CONFIG_MAX_ERRORS 20

/* Which keys a section already set (to refuse repeats). */
enum {
  K_DESCRIPTION = 1u << 0,
  K_PATH = 1u << 1,
  K_FORMAT = 1u << 2,
  K_SIZE = 1u << 3,
  K_READONLY = 1u << 4,
  K_SNAPSHOT = 1u << 5,
  K_PLUGIN = 1u << 6,
  K_CACHE = 1u << 7,
};

struct parser {
  const char *file;
  unsigned line;
  unsigned errors;
  struct export_config_vec *out;
  struct export_config *cur;    /* the section being read */
  struct export_config scratch; /* a section in error: keys checked only */
  unsigned seen;                /* K_* of cur */
  unsigned errors_before;       /* p->errors when cur began */
  char *size;                   /* size = (memory format) */
};

static void perr(struct parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void perr(struct parser *p, const char *fmt, ...)
{
  char msg[512];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (p->errors++ < CONFIG_MAX_ERRORS)
    log_error("%s:%u: %s", p->file, p->line, msg);
}

static char *trim(char *s)
{
  char *e;
  while (*s == ' ' || *s == '\t')
    s++;
  e = s + strlen(s);
  while (e > s &&
         (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
    *--e = '\0';
  return s;
}

/* ---- allowed clients ---- */

static int parse_acl_item(const char *item, struct acl_rule *r)
{
  char buf[INET6_ADDRSTRLEN + 8];
  char *slash, *end;
  unsigned max;

  *r = (struct acl_rule){0};
  if (!strcmp(item, "unix")) {
    r->family = AF_UNIX;
    return 0;
  }
  if (strlen(item) >= sizeof buf)
    return -1;
  strcpy(buf, item);
  slash = strchr(buf, '/');
  if (slash)
    *slash = '\0';
  if (inet_pton(AF_INET, buf, r->addr) == 1) {
    r->family = AF_INET;
    max = 32;
  } else if (inet_pton(AF_INET6, buf, r->addr) == 1) {
    r->family = AF_INET6;
    max = 128;
  } else {
    return -1;
  }
  r->prefix = max;
  if (slash) {
    errno = 0;
    unsigned long n = strtoul(slash + 1, &end, 10);
    if (errno || end == slash + 1 || *end || slash[1] == '-' || n > max)
      return -1;
    r->prefix = (unsigned)n;
  }
  return 0;
}

/* "allow = ADDR[/BITS], ..., unix" (commas and/or blanks). */
static void parse_allow(struct parser *p, char *v)
{
  char *save = NULL;
  bool any = false;

  for (char *t = strtok_r(v, ", \t", &save); t;
       t = strtok_r(NULL, ", \t", &save)) {
    struct acl_rule r;
    any = true;
    if (parse_acl_item(t, &r) < 0) {
      perr(p,
           "allow: '%s' is not an IPv4/IPv6 address, a network ADDR/BITS "
           "or 'unix'",
           t);
      continue;
    }
    if (acl_vec_append(&p->cur->allow, r) < 0)
      perr(p, "out of memory");
  }
  if (!any)
    perr(p, "allow: empty list");
}

static bool prefix_match(const unsigned char *a, const unsigned char *b,
                         unsigned bits)
{
  unsigned bytes = bits / 8, rest = bits % 8;
  if (memcmp(a, b, bytes) != 0)
    return false;
  if (rest == 0)
    return true;
  unsigned char mask = (unsigned char)(0xff << (8 - rest));
  return (a[bytes] & mask) == (b[bytes] & mask);
}

bool config_acl_allows(const struct acl_vec *rules, const void *sa_)
{
  const struct sockaddr *sa = sa_;
  unsigned char addr[16];
  int family = sa->sa_family;

  if (rules->len == 0)
    return true;
  if (family == AF_INET) {
    memcpy(addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
  } else if (family == AF_INET6) {
    const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    /* A dual-stack socket shows IPv4 clients as ::ffff:a.b.c.d. */
    if (IN6_IS_ADDR_V4MAPPED(a6)) {
      family = AF_INET;
      memcpy(addr, a6->s6_addr + 12, 4);
    } else {
      memcpy(addr, a6->s6_addr, 16);
    }
  }
  for (size_t i = 0; i < rules->len; i++) {
    const struct acl_rule *r = &rules->ptr[i];
    if (r->family != family)
      continue;
    if (family == AF_UNIX || prefix_match(r->addr, addr, r->prefix))
      return true;
  }
  return false;
}

bool config_same_acl(const struct acl_vec *a, const struct acl_vec *b)
{
  return a->len == b->len &&
         (a->len == 0 || !memcmp(a->ptr, b->ptr, a->len * sizeof *a->ptr));
}

/* ---- values ---- */

static int parse_bool(const char *v, bool *out)
{
  static const char *const yes[] = {"yes", "true", "on", "1"};
  static const char *const no[] = {"no", "false", "off", "0"};
  for (size_t i = 0; i < 4; i++) {
    if (!strcasecmp(v, yes[i])) {
      *out = true;
      return 0;
    }
    if (!strcasecmp(v, no[i])) {
      *out = false;
      return 0;
    }
  }
  return -1;
}

/* Set a string key once. */
static void set_str(struct parser *p, unsigned key, const char *name,
                    const char **dst, const char *v)
{
  char *s;
  if (p->seen & key) {
    perr(p, "'%s' given twice in this export", name);
    return;
  }
  p->seen |= key;
  s = strdup(v);
  if (!s)
    perr(p, "out of memory");
  *dst = s;
}

static void add_param(struct parser *p, const char *v)
{
  struct export_config *ec = p->cur;
  char **argv = realloc(ec->plugin_argv, (ec->plugin_argc + 2) * sizeof *argv);
  if (!argv || !(argv[ec->plugin_argc] = strdup(v))) {
    if (argv)
      ec->plugin_argv = argv;
    perr(p, "out of memory");
    return;
  }
  ec->plugin_argv = argv;
  argv[++ec->plugin_argc] = NULL;
}

/* One "key = value" line of the current export. */
static void parse_key(struct parser *p, const char *k, char *v)
{
  struct export_config *ec = p->cur;
  uint64_t size;

  if (!*v && strcmp(k, "description") != 0) {
    perr(p, "'%s' needs a value", k);
  } else if (!strcmp(k, "description")) {
    set_str(p, K_DESCRIPTION, k, &ec->description, v);
  } else if (!strcmp(k, "path")) {
    set_str(p, K_PATH, k, &ec->path, v);
  } else if (!strcmp(k, "format")) {
    if (strcmp(v, "raw") && strcmp(v, "qcow2") && strcmp(v, "memory"))
      perr(p, "format: unknown format '%s' (raw, qcow2 or memory)", v);
    else
      set_str(p, K_FORMAT, k, &ec->format, v);
  } else if (!strcmp(k, "size")) {
    if (options_size(v, &size) < 0 || size == 0)
      perr(p, "size: invalid size '%s' (e.g. 512M, 1G)", v);
    else
      set_str(p, K_SIZE, k, (const char **)&p->size, v);
  } else if (!strcmp(k, "read-only") || !strcmp(k, "readonly")) {
    if (p->seen & K_READONLY)
      perr(p, "'%s' given twice in this export", k);
    else if (parse_bool(v, &ec->readonly) < 0)
      perr(p, "%s: expected yes or no, got '%s'", k, v);
    p->seen |= K_READONLY;
  } else if (!strcmp(k, "snapshot")) {
    set_str(p, K_SNAPSHOT, k, &ec->snapshot, v);
  } else if (!strcmp(k, "plugin")) {
    set_str(p, K_PLUGIN, k, &ec->plugin, v);
  } else if (!strcmp(k, "param")) {
    add_param(p, v);
  } else if (!strcmp(k, "cache-size")) {
    if (p->seen & K_CACHE)
      perr(p, "'%s' given twice in this export", k);
    else if (options_size(v, &ec->cache_size) < 0)
      perr(p, "cache-size: invalid size '%s' (e.g. 32M)", v);
    p->seen |= K_CACHE;
  } else if (!strcmp(k, "allow")) {
    parse_allow(p, v);
  } else {
    perr(p, "unknown key '%s'", k);
  }
}

/* The section ends: check that its keys make one coherent export. */
static void finish_section(struct parser *p)
{
  struct export_config *ec = p->cur;
  bool memory = ec && ec->format && !strcmp(ec->format, "memory");
  unsigned line = p->line;

  if (!ec)
    return;
  if (ec == &p->scratch) {
    config_export_clear(ec);
    free(p->size);
    p->size = NULL;
    p->cur = NULL;
    return;
  }
  p->line = ec->line; /* errors point at the section header */
  if (p->errors > p->errors_before)
    ; /* a bad value was reported: what follows from it is noise */
  else if (ec->plugin && (ec->path || ec->format || p->size || ec->snapshot))
    perr(p, "export '%s': 'plugin' excludes path, format, size and snapshot",
         ec->name);
  else if (!ec->plugin && ec->plugin_argc)
    perr(p, "export '%s': 'param' needs 'plugin'", ec->name);
  else if (memory && (ec->path || !p->size))
    perr(p, "export '%s': format memory takes 'size', not 'path'", ec->name);
  else if (!memory && p->size)
    perr(p, "export '%s': 'size' is only for format memory", ec->name);
  else if (!ec->plugin && !memory && !ec->path)
    perr(p, "export '%s': no 'path' (or 'plugin')", ec->name);
  else if (ec->snapshot && ec->format && strcmp(ec->format, "qcow2") != 0)
    perr(p, "export '%s': 'snapshot' needs a qcow2 image", ec->name);
  if (memory && !ec->path) {
    ec->path = p->size; /* the memory format takes its size as path */
    p->size = NULL;
  }
  free(p->size);
  p->size = NULL;
  p->cur = NULL;
  p->line = line;
}

/* "[export NAME]": a new export (NAME may be empty: the default). */
static void parse_section(struct parser *p, char *s)
{
  struct export_config ec = {.line = p->line};
  char *end = strrchr(s, ']');
  char *name;

  finish_section(p);
  /* Until the next header, keys of a bad section are checked but
   * go nowhere. */
  p->cur = &p->scratch;
  p->seen = 0;
  p->errors_before = p->errors;
  if (!end || trim(end + 1)[0] != '\0') {
    perr(p, "a section header must end with ']'");
    return;
  }
  *end = '\0';
  s = trim(s + 1);
  if (strncmp(s, "export", 6) != 0 || (s[6] && s[6] != ' ' && s[6] != '\t')) {
    perr(p, "unknown section '[%s]' (expected [export NAME])", s);
    return;
  }
  name = trim(s + 6);
  if (strlen(name) > MAX_STRING) {
    perr(p, "export name longer than %d bytes", MAX_STRING);
    return;
  }
  for (size_t i = 0; i < p->out->len; i++)
    if (!strcmp(p->out->ptr[i].name, name)) {
      perr(p, "export '%s' already defined at line %u", name,
           p->out->ptr[i].line);
      return;
    }
  ec.name = strdup(name);
  if (!ec.name || export_config_vec_append(p->out, ec) < 0) {
    free((char *)ec.name);
    perr(p, "out of memory");
    return;
  }
  p->cur = &p->out->ptr[p->out->len - 1];
}

static void parse_line(struct parser *p, char *line)
{
  char *s = trim(line), *eq;

  if (*s == '\0' || *s == '#' || *s == ';')
    return;
  if (*s == '[') {
    parse_section(p, s);
    return;
  }
  eq = strchr(s, '=');
  if (!eq) {
    perr(p, "expected 'key = value' or '[export NAME]'");
    return;
  }
  *eq = '\0';
  char *k = trim(s), *v = trim(eq + 1);
  if (!*k)
    perr(p, "missing key before '='");
  else if (!p->cur)
    perr(p, "'%s' outside an [export NAME] section", k);
  else
    parse_key(p, k, v);
}

/* Plugins keep global state: one export per plugin (nbdkit, too, runs
 * one plugin per process). */
static void check_plugins(struct parser *p)
{
  for (size_t i = 0; i < p->out->len; i++)
    for (size_t j = 0; j < i && p->out->ptr[i].plugin; j++)
      if (p->out->ptr[j].plugin &&
          !strcmp(p->out->ptr[i].plugin, p->out->ptr[j].plugin)) {
        p->line = p->out->ptr[i].line;
        perr(p, "plugin '%s' is already used by export '%s' (line %u)",
             p->out->ptr[i].plugin, p->out->ptr[j].name, p->out->ptr[j].line);
      }
}

int config_load(const char *path, struct export_config_vec *out)
{
  struct parser p = {.file = path, .out = out};
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  FILE *f;

  *out = (struct export_config_vec){0};
  f = fopen(path, "re");
  if (!f) {
    log_error("%s: %m", path);
    return -errno;
  }
  while ((n = getline(&line, &cap, f)) >= 0) {
    p.line++;
    if ((size_t)n != strlen(line))
      perr(&p, "NUL byte in line");
    else if (n > CONFIG_MAX_LINE)
      perr(&p, "line longer than %d bytes", CONFIG_MAX_LINE);
    else
      parse_line(&p, line);
  }
  if (ferror(f))
    perr(&p, "read error: %m");
  free(line);
  fclose(f);
  finish_section(&p);
  check_plugins(&p);
  if (p.errors == 0 && out->len == 0) {
    p.line++;
    perr(&p, "no [export NAME] section");
  }
  if (p.errors > CONFIG_MAX_ERRORS)
    log_error("%s: %u more errors", path, p.errors - CONFIG_MAX_ERRORS);
  if (p.errors) {
    config_exports_free(out);
    return -EINVAL;
  }
  return 0;
}

/* ---- copies ---- */

static int dup_str(const char *s, const char **dst)
{
  *dst = NULL;
  if (!s)
    return 0;
  *dst = strdup(s);
  return *dst ? 0 : -ENOMEM;
}

int config_export_dup(const struct export_config *src,
                      struct export_config *dst)
{
  *dst = (struct export_config){
      .readonly = src->readonly,
      .cache_size = src->cache_size,
      .line = src->line,
  };
  if (dup_str(src->name, &dst->name) < 0 ||
      dup_str(src->description, &dst->description) < 0 ||
      dup_str(src->path, &dst->path) < 0 ||
      dup_str(src->format, &dst->format) < 0 ||
      dup_str(src->plugin, &dst->plugin) < 0 ||
      dup_str(src->snapshot, &dst->snapshot) < 0)
    goto nomem;
  if (src->plugin_argc) {
    dst->plugin_argv = calloc((size_t)src->plugin_argc + 1, sizeof(char *));
    if (!dst->plugin_argv)
      goto nomem;
    for (int i = 0; i < src->plugin_argc; i++) {
      dst->plugin_argv[i] = strdup(src->plugin_argv[i]);
      dst->plugin_argc = i + 1;
      if (!dst->plugin_argv[i])
        goto nomem;
    }
  }
  for (size_t i = 0; i < src->allow.len; i++)
    if (acl_vec_append(&dst->allow, src->allow.ptr[i]) < 0)
      goto nomem;
  return 0;
nomem:
  config_export_clear(dst);
  return -ENOMEM;
}

void config_export_clear(struct export_config *ec)
{
  free((char *)ec->name);
  free((char *)ec->description);
  free((char *)ec->path);
  free((char *)ec->format);
  free((char *)ec->plugin);
  free((char *)ec->snapshot);
  for (int i = 0; i < ec->plugin_argc; i++)
    free(ec->plugin_argv[i]);
  free(ec->plugin_argv);
  acl_vec_reset(&ec->allow);
  *ec = (struct export_config){0};
}

void config_exports_free(struct export_config_vec *v)
{
  for (size_t i = 0; i < v->len; i++)
    config_export_clear(&v->ptr[i]);
  export_config_vec_reset(v);
}

static bool same_str(const char *a, const char *b)
{
  return a == b || (a && b && !strcmp(a, b));
}

bool config_same_source(const struct export_config *a,
                        const struct export_config *b)
{
  if (!same_str(a->name, b->name) || !same_str(a->path, b->path) ||
      !same_str(a->format, b->format) || !same_str(a->plugin, b->plugin) ||
      !same_str(a->snapshot, b->snapshot) || a->readonly != b->readonly ||
      a->cache_size != b->cache_size || a->plugin_argc != b->plugin_argc)
    return false;
  for (int i = 0; i < a->plugin_argc; i++)
    if (strcmp(a->plugin_argv[i], b->plugin_argv[i]) != 0)
      return false;
  return true;
}
