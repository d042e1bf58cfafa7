/* The exported nbdkit_* helpers for configuration: numbers, sizes,
 * booleans, passwords, paths and stdio (nbdkit-plugin(3) "PARSING
 * COMMAND LINE PARAMETERS", "FILENAMES AND PATHS"). */
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

/* Parse str as a signed number (decimal, 0x hex or 0 octal) within
 * [lo, hi]; on error log with what and leave *r alone. */
static int parse_signed(const char *what, const char *str, intmax_t lo,
                        intmax_t hi, intmax_t *r)
{
  char *end;
  intmax_t v;

  errno = 0;
  v = strtoimax(str, &end, 0);
  if (end == str || *end != '\0') {
    nbdkit_error("%s: could not parse number: \"%s\"", what, str);
    errno = EINVAL;
    return -1;
  }
  if (errno == ERANGE || v < lo || v > hi) {
    nbdkit_error("%s: number out of range: \"%s\"", what, str);
    errno = ERANGE;
    return -1;
  }
  *r = v;
  return 0;
}

/* The same for unsigned types; strtoumax would silently negate "-1". */
static int parse_unsigned(const char *what, const char *str, uintmax_t hi,
                          uintmax_t *r)
{
  const char *p = str;
  char *end;
  uintmax_t v;

  while (isspace((unsigned char)*p))
    p++;
  if (*p == '-') {
    nbdkit_error("%s: negative numbers are not allowed: \"%s\"", what, str);
    errno = ERANGE;
    return -1;
  }
  errno = 0;
  v = strtoumax(str, &end, 0);
  if (end == str || *end != '\0') {
    nbdkit_error("%s: could not parse number: \"%s\"", what, str);
    errno = EINVAL;
    return -1;
  }
  if (errno == ERANGE || v > hi) {
    nbdkit_error("%s: number out of range: \"%s\"", what, str);
    errno = ERANGE;
    return -1;
  }
  *r = v;
  return 0;
}

#define HOST_PARSE_SIGNED(fn, T, lo, hi)                                       \
  int fn(const char *what, const char *str, T *r)                              \
  {                                                                            \
    intmax_t v;                                                                \
    if (parse_signed(what, str, lo, hi, &v) < 0)                               \
      return -1;                                                               \
    if (r)                                                                     \
      *r = (T)v;                                                               \
    return 0;                                                                  \
  }
#define HOST_PARSE_UNSIGNED(fn, T, hi)                                         \
  int fn(const char *what, const char *str, T *r)                              \
  {                                                                            \
    uintmax_t v;                                                               \
    if (parse_unsigned(what, str, hi, &v) < 0)                                 \
      return -1;                                                               \
    if (r)                                                                     \
      *r = (T)v;                                                               \
    return 0;                                                                  \
  }

HOST_PARSE_SIGNED(nbdkit_parse_int, int, INT_MIN, INT_MAX)
HOST_PARSE_SIGNED(nbdkit_parse_int8_t, int8_t, INT8_MIN, INT8_MAX)
HOST_PARSE_SIGNED(nbdkit_parse_int16_t, int16_t, INT16_MIN, INT16_MAX)
HOST_PARSE_SIGNED(nbdkit_parse_int32_t, int32_t, INT32_MIN, INT32_MAX)
HOST_PARSE_SIGNED(nbdkit_parse_int64_t, int64_t, INT64_MIN, INT64_MAX)
HOST_PARSE_UNSIGNED(nbdkit_parse_unsigned, unsigned, UINT_MAX)
HOST_PARSE_UNSIGNED(nbdkit_parse_uint8_t, uint8_t, UINT8_MAX)
HOST_PARSE_UNSIGNED(nbdkit_parse_uint16_t, uint16_t, UINT16_MAX)
HOST_PARSE_UNSIGNED(nbdkit_parse_uint32_t, uint32_t, UINT32_MAX)
HOST_PARSE_UNSIGNED(nbdkit_parse_uint64_t, uint64_t, UINT64_MAX)

/* A decimal number with an optional one-letter suffix: b (bytes),
 * k m g t p e (powers of 1024) or s (512-byte sectors). */
int64_t nbdkit_parse_size(const char *str)
{
  static const char units[] = "bkmgtpe";
  const char *u = NULL;
  char *end;
  intmax_t v;
  int64_t scale = 1;

  errno = 0;
  v = strtoimax(str, &end, 10);
  if (end == str) {
    nbdkit_error("could not parse size string (%s)", str);
    return -1;
  }
  if (v < 0) {
    nbdkit_error("size cannot be negative (%s)", str);
    return -1;
  }
  if (errno == ERANGE) {
    nbdkit_error("size (%s) exceeds maximum value", str);
    return -1;
  }
  if (*end != '\0') {
    int c = tolower((unsigned char)*end);
    if (end[1] != '\0' || (c != 's' && !(u = strchr(units, c)))) {
      nbdkit_error("could not parse size: unknown suffix '%s'", end);
      return -1;
    }
    if (c == 's')
      scale = 512;
    else
      for (const char *p = units; p < u; p++)
        scale *= 1024;
  }
  if (v > INT64_MAX / scale) {
    nbdkit_error("size (%s) exceeds maximum value", str);
    return -1;
  }
  return v * scale;
}

int nbdkit_parse_bool(const char *str)
{
  static const char *const yes[] = {"1", "true", "t", "yes", "y", "on"};
  static const char *const no[] = {"0", "false", "f", "no", "n", "off"};

  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
    if (strcasecmp(str, yes[i]) == 0)
      return 1;
    if (strcasecmp(str, no[i]) == 0)
      return 0;
  }
  nbdkit_error("could not decipher boolean (%s)", str);
  return -1;
}

/* Unsafe with -s (the server says so), and whenever stdin is a socket:
 * then it is a client, never a user typing a password. */
int nbdkit_stdio_safe(void)
{
  struct stat st;

  if (host_stdio_busy)
    return 0;
  return !(fstat(0, &st) == 0 && S_ISSOCK(st.st_mode));
}

/* Read all of fd into a malloc'd string, dropping one final newline. */
static int read_password_fd(int fd, const char *what, char **password)
{
  size_t len = 0, cap = 64;
  char *buf = malloc(cap);
  ssize_t n;

  if (!buf) {
    nbdkit_error("malloc: %m");
    return -1;
  }
  for (;;) {
    if (cap - len < 2) {
      char *nb = realloc(buf, cap * 2);
      if (!nb) {
        free(buf);
        nbdkit_error("realloc: %m");
        return -1;
      }
      buf = nb;
      cap *= 2;
    }
    n = read(fd, buf + len, cap - len - 1);
    if (n == 0)
      break;
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      nbdkit_error("reading password from %s: %m", what);
      free(buf);
      return -1;
    }
    len += (size_t)n;
  }
  if (len > 0 && buf[len - 1] == '\n')
    len--;
  if (len > 0 && buf[len - 1] == '\r')
    len--;
  buf[len] = '\0';
  *password = buf;
  return 0;
}

/* "-": prompt on the terminal with echo off. */
static int read_password_tty(char **password)
{
  struct termios old, quiet;
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;

  if (!nbdkit_stdio_safe() || !isatty(0)) {
    nbdkit_error("stdin is not a terminal: use password=+FILE or "
                 "password=-FD instead of password=-");
    errno = EINVAL;
    return -1;
  }
  printf("password: ");
  fflush(stdout);
  tcgetattr(0, &old);
  quiet = old;
  quiet.c_lflag &= ~(tcflag_t)ECHO;
  tcsetattr(0, TCSAFLUSH, &quiet);
  n = getline(&line, &cap, stdin);
  tcsetattr(0, TCSAFLUSH, &old);
  printf("\n");
  if (n < 0) {
    free(line);
    nbdkit_error("could not read password from the terminal");
    errno = EIO;
    return -1;
  }
  if (n > 0 && line[n - 1] == '\n')
    line[n - 1] = '\0';
  *password = line;
  return 0;
}

int nbdkit_read_password(const char *value, char **password)
{
  *password = NULL;
  if (strcmp(value, "-") == 0)
    return read_password_tty(password);
  if (value[0] == '-') {
    int fd, r;
    if (nbdkit_parse_int("password file descriptor", value + 1, &fd) < 0)
      return -1;
    if (fd <= 2) {
      nbdkit_error("password=-%d: cannot read from stdin, stdout or stderr",
                   fd);
      errno = EINVAL;
      return -1;
    }
    r = read_password_fd(fd, value, password);
    close(fd);
    return r;
  }
  if (value[0] == '+') {
    int fd = open(value + 1, O_RDONLY | O_CLOEXEC);
    int r;
    if (fd < 0) {
      nbdkit_error("open: %s: %m", value + 1);
      return -1;
    }
    r = read_password_fd(fd, value + 1, password);
    close(fd);
    return r;
  }
  *password = strdup(value);
  if (!*password) {
    nbdkit_error("strdup: %m");
    return -1;
  }
  return 0;
}

char *nbdkit_absolute_path(const char *path)
{
  char *cwd, *r;

  if (!path || !*path) {
    nbdkit_error("cannot convert a null or empty path to an absolute path");
    errno = EINVAL;
    return NULL;
  }
  if (path[0] == '/') {
    r = strdup(path);
    if (!r)
      nbdkit_error("strdup: %m");
    return r;
  }
  cwd = getcwd(NULL, 0);
  if (!cwd) {
    nbdkit_error("getcwd: %m");
    return NULL;
  }
  if (asprintf(&r, "%s/%s", cwd, path) < 0) {
    nbdkit_error("asprintf: %m");
    r = NULL;
  }
  free(cwd);
  return r;
}

char *nbdkit_realpath(const char *path)
{
  char *r;

  if (!path || !*path) {
    nbdkit_error("cannot resolve a null or empty path");
    errno = EINVAL;
    return NULL;
  }
  r = realpath(path, NULL);
  if (!r)
    nbdkit_error("realpath: %s: %m", path);
  return r;
}
