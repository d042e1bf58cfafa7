/* qnbd-extclient: a plain-socket NBD client that checks a server's
 * extended headers (doc/proto.md, NBD_OPT_EXTENDED_HEADERS): 32-byte
 * requests and replies, 64-bit effect lengths, BLOCK_STATUS_EXT.
 *
 * Usage: qnbd-extclient SOCKET [EXPORT]
 * The export must be writable and larger than 7 GiB (e.g. qnbd -f memory
 * 16G).  Exit status 0 only if every check passed; each failed check
 * prints one "FAIL" line. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/endian.h"

/* Wire constants, from the spec's "Values" section. */
#define EC_NBDMAGIC        UINT64_C(0x4e42444d41474943)
#define EC_IHAVEOPT        UINT64_C(0x49484156454F5054)
#define EC_OPT_REPLY_MAGIC UINT64_C(0x3e889045565a9)
#define EC_EXT_REQ_MAGIC   0x21e41c71u
#define EC_EXT_REPLY_MAGIC 0x6e8a278cu

#define EC_FLAG_FIXED_NEWSTYLE 1u
#define EC_FLAG_NO_ZEROES      2u

#define EC_OPT_GO               7u
#define EC_OPT_STRUCTURED_REPLY 8u
#define EC_OPT_SET_META_CONTEXT 10u
#define EC_OPT_EXTENDED_HEADERS 11u

#define EC_REP_ACK          1u
#define EC_REP_INFO         3u
#define EC_REP_META_CONTEXT 4u
#define EC_REP_ERR_BIT      0x80000000u

#define EC_INFO_EXPORT     0u
#define EC_INFO_BLOCK_SIZE 3u

#define EC_CMD_READ         0u
#define EC_CMD_WRITE        1u
#define EC_CMD_DISC         2u
#define EC_CMD_FLUSH        3u
#define EC_CMD_TRIM         4u
#define EC_CMD_WRITE_ZEROES 6u
#define EC_CMD_BLOCK_STATUS 7u

#define EC_CMD_FLAG_REQ_ONE     (1u << 3)
#define EC_CMD_FLAG_PAYLOAD_LEN (1u << 5)

#define EC_TF_SEND_FLUSH        (1u << 2)
#define EC_TF_SEND_TRIM         (1u << 5)
#define EC_TF_SEND_WRITE_ZEROES (1u << 6)

#define EC_REPLY_FLAG_DONE       1u
#define EC_TYPE_NONE             0u
#define EC_TYPE_OFFSET_DATA      1u
#define EC_TYPE_OFFSET_HOLE      2u
#define EC_TYPE_BLOCK_STATUS     5u
#define EC_TYPE_BLOCK_STATUS_EXT 6u
#define EC_TYPE_ERROR_BIT        0x8000u

#define EC_STATE_ZERO 2u
#define EC_EINVAL     22u

#define EC_GiB       (UINT64_C(1) << 30)
#define EC_MAX_EXT   4096
#define EC_MAX_CHUNK (UINT64_C(64) << 20)

struct ec_conn {
  int fd;
  uint64_t cookie;
  uint64_t size;
  uint16_t tflags;
  uint32_t min_block;
  uint32_t ctx_id;
  int failures;
};

struct ec_extent {
  uint64_t length;
  uint32_t flags;
};

/* Everything one request's reply chunks said. */
struct ec_result {
  uint32_t error;        /* first error chunk's value, 0 if none */
  uint8_t *buf;          /* READ: where content chunks land */
  uint64_t covered;      /* READ: bytes covered by content chunks */
  unsigned status_types; /* bitmask of 1 << status chunk type seen */
  int status_chunks;
  size_t n_ext;
  struct ec_extent ext[EC_MAX_EXT];
};

static void ec_fail(struct ec_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void ec_fail(struct ec_conn *c, const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  fputs("FAIL: ", stdout);
  vprintf(fmt, ap);
  putchar('\n');
  fflush(stdout);
  va_end(ap);
  c->failures++;
}

#define EC_CHECK(c, cond, ...)                                                 \
  do {                                                                         \
    if (!(cond))                                                               \
      ec_fail((c), __VA_ARGS__);                                               \
  } while (0)

static int ec_wait(int fd, short events)
{
  struct pollfd p = {.fd = fd, .events = events};
  int r = poll(&p, 1, 10000);

  if (r < 0)
    return -errno;
  return r == 0 ? -ETIMEDOUT : 0;
}

static int ec_write_all(struct ec_conn *c, const void *buf, size_t len)
{
  const uint8_t *p = buf;

  while (len > 0) {
    int r = ec_wait(c->fd, POLLOUT);
    ssize_t n;

    if (r < 0)
      return r;
    n = send(c->fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Returns 0, -EPIPE on EOF, or another negative errno. */
static int ec_read_all(struct ec_conn *c, void *buf, size_t len)
{
  uint8_t *p = buf;

  while (len > 0) {
    int r = ec_wait(c->fd, POLLIN);
    ssize_t n;

    if (r < 0)
      return r;
    n = recv(c->fd, p, len, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    if (n == 0)
      return -EPIPE;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static int ec_connect(struct ec_conn *c, const char *path)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};

  if (strlen(path) >= sizeof sa.sun_path)
    return -ENAMETOOLONG;
  strcpy(sa.sun_path, path);
  c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c->fd < 0)
    return -errno;
  if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    return -errno;
  return 0;
}

/* --- Option haggling ("Fixed newstyle negotiation") --- */

static int ec_send_opt(struct ec_conn *c, uint32_t opt, const void *data,
                       uint32_t len)
{
  uint8_t hdr[16];
  int r;

  store_be64(hdr, EC_IHAVEOPT);
  store_be32(hdr + 8, opt);
  store_be32(hdr + 12, len);
  r = ec_write_all(c, hdr, sizeof hdr);
  if (r == 0 && len > 0)
    r = ec_write_all(c, data, len);
  return r;
}

/* One option reply; *payload is malloc'ed (NULL when empty). */
static int ec_recv_opt_reply(struct ec_conn *c, uint32_t opt, uint32_t *type,
                             uint8_t **payload, uint32_t *len)
{
  uint8_t hdr[20];
  int r = ec_read_all(c, hdr, sizeof hdr);

  *payload = NULL;
  if (r < 0)
    return r;
  if (load_be64(hdr) != EC_OPT_REPLY_MAGIC || load_be32(hdr + 8) != opt)
    return -EPROTO;
  *type = load_be32(hdr + 12);
  *len = load_be32(hdr + 16);
  if (*len > (1u << 20))
    return -EPROTO;
  if (*len == 0)
    return 0;
  *payload = malloc(*len);
  if (*payload == NULL)
    return -ENOMEM;
  r = ec_read_all(c, *payload, *len);
  if (r < 0) {
    free(*payload);
    *payload = NULL;
  }
  return r;
}

/* Send an option and drain its replies; *final is the last reply type. */
static int ec_opt(struct ec_conn *c, uint32_t opt, const void *data,
                  uint32_t len, uint32_t *final)
{
  int r = ec_send_opt(c, opt, data, len);

  while (r == 0) {
    uint8_t *p;
    uint32_t type, plen;

    r = ec_recv_opt_reply(c, opt, &type, &p, &plen);
    if (r < 0)
      break;
    if (opt == EC_OPT_SET_META_CONTEXT && type == EC_REP_META_CONTEXT &&
        plen == 4 + strlen("base:allocation") &&
        memcmp(p + 4, "base:allocation", plen - 4) == 0)
      c->ctx_id = load_be32(p);
    if (opt == EC_OPT_GO && type == EC_REP_INFO && plen == 12 &&
        load_be16(p) == EC_INFO_EXPORT) {
      c->size = load_be64(p + 2);
      c->tflags = load_be16(p + 10);
    }
    if (opt == EC_OPT_GO && type == EC_REP_INFO && plen == 14 &&
        load_be16(p) == EC_INFO_BLOCK_SIZE)
      c->min_block = load_be32(p + 2);
    free(p);
    if (type == EC_REP_ACK || (type & EC_REP_ERR_BIT)) {
      *final = type;
      break;
    }
  }
  return r;
}

static int ec_handshake(struct ec_conn *c, const char *name)
{
  uint8_t buf[18 + 4096 + 32];
  size_t nlen = strlen(name);
  uint32_t final;
  int r = ec_read_all(c, buf, 18);

  if (r < 0)
    return r;
  if (load_be64(buf) != EC_NBDMAGIC || load_be64(buf + 8) != EC_IHAVEOPT ||
      !(load_be16(buf + 16) & EC_FLAG_FIXED_NEWSTYLE))
    return -EPROTO;
  store_be32(buf, EC_FLAG_FIXED_NEWSTYLE |
                      (load_be16(buf + 16) & EC_FLAG_NO_ZEROES));
  if ((r = ec_write_all(c, buf, 4)) < 0)
    return r;
  if (nlen > 4096)
    return -ENAMETOOLONG;

  /* STRUCTURED_REPLY first: a client MAY, and EXTENDED_HEADERS then
   * takes precedence. */
  if ((r = ec_opt(c, EC_OPT_STRUCTURED_REPLY, NULL, 0, &final)) < 0)
    return r;
  EC_CHECK(c, final == EC_REP_ACK, "STRUCTURED_REPLY: reply %#x", final);

  /* "The client MUST NOT send any additional data with the option, and
   * the server SHOULD reject a request that includes data with
   * NBD_REP_ERR_INVALID." */
  if ((r = ec_opt(c, EC_OPT_EXTENDED_HEADERS, "x", 1, &final)) < 0)
    return r;
  EC_CHECK(c, final == EC_REP_ERR_BIT + 3,
           "EXTENDED_HEADERS with data: reply %#x, expected ERR_INVALID",
           final);
  if ((r = ec_opt(c, EC_OPT_EXTENDED_HEADERS, NULL, 0, &final)) < 0)
    return r;
  if (final != EC_REP_ACK) {
    ec_fail(c, "EXTENDED_HEADERS: reply %#x, expected ACK", final);
    return -ENOTSUP;
  }

  /* SET_META_CONTEXT: name length, name, 1 query, its length, query. */
  store_be32(buf, (uint32_t)nlen);
  memcpy(buf + 4, name, nlen);
  store_be32(buf + 4 + nlen, 1);
  store_be32(buf + 8 + nlen, 15);
  memcpy(buf + 12 + nlen, "base:allocation", 15);
  c->ctx_id = UINT32_MAX;
  r = ec_opt(c, EC_OPT_SET_META_CONTEXT, buf, (uint32_t)(27 + nlen), &final);
  if (r < 0)
    return r;
  EC_CHECK(c, final == EC_REP_ACK && c->ctx_id != UINT32_MAX,
           "SET_META_CONTEXT base:allocation: reply %#x", final);

  /* GO: name length, name, 1 info request (BLOCK_SIZE). */
  store_be16(buf + 4 + nlen, 1);
  store_be16(buf + 6 + nlen, EC_INFO_BLOCK_SIZE);
  if ((r = ec_opt(c, EC_OPT_GO, buf, (uint32_t)(8 + nlen), &final)) < 0)
    return r;
  if (final != EC_REP_ACK) {
    ec_fail(c, "GO: reply %#x", final);
    return -EPROTO;
  }
  return 0;
}

/* --- Transmission with extended headers --- */

static int ec_send_req(struct ec_conn *c, uint16_t flags, uint16_t type,
                       uint64_t offset, uint64_t length, const void *payload,
                       size_t plen)
{
  uint8_t hdr[32];
  int r;

  store_be32(hdr, EC_EXT_REQ_MAGIC);
  store_be16(hdr + 4, flags);
  store_be16(hdr + 6, type);
  store_be64(hdr + 8, ++c->cookie);
  store_be64(hdr + 16, offset);
  store_be64(hdr + 24, length);
  r = ec_write_all(c, hdr, sizeof hdr);
  if (r == 0 && plen > 0)
    r = ec_write_all(c, payload, plen);
  return r;
}

/* Record one content chunk of a READ reply. */
static void ec_content(struct ec_conn *c, struct ec_result *res, uint16_t type,
                       const uint8_t *p, uint64_t len, uint64_t roff,
                       uint64_t rlen)
{
  uint64_t off, n;

  if (len < (type == EC_TYPE_OFFSET_DATA ? 9u : 12u) ||
      (type == EC_TYPE_OFFSET_HOLE && len != 12)) {
    ec_fail(c, "content chunk type %u with length %" PRIu64, type, len);
    return;
  }
  off = load_be64(p);
  n = type == EC_TYPE_OFFSET_DATA ? len - 8 : load_be32(p + 8);
  if (off < roff || n > rlen || off - roff > rlen - n) {
    ec_fail(c, "content chunk %" PRIu64 "+%" PRIu64 " outside the request", off,
            n);
    return;
  }
  if (type == EC_TYPE_OFFSET_DATA)
    memcpy(res->buf + (off - roff), p + 8, n);
  else
    memset(res->buf + (off - roff), 0, n);
  res->covered += n;
}

/* Record one status chunk (compact or extended descriptors). */
static void ec_status(struct ec_conn *c, struct ec_result *res, uint16_t type,
                      const uint8_t *p, uint64_t len)
{
  bool ext = type == EC_TYPE_BLOCK_STATUS_EXT;
  uint64_t hdr = ext ? 8 : 4, each = ext ? 16 : 8, count, i;

  res->status_types |= 1u << type;
  res->status_chunks++;
  if (len < hdr + each || (len - hdr) % each != 0) {
    ec_fail(c, "status chunk type %u with length %" PRIu64, type, len);
    return;
  }
  count = (len - hdr) / each;
  EC_CHECK(c, load_be32(p) == c->ctx_id, "status chunk for context %u",
           load_be32(p));
  /* "If the descriptor count field contains 0 ... determined solely by
   * the length field"; otherwise it must match. */
  if (ext && load_be32(p + 4) != 0)
    EC_CHECK(c, load_be32(p + 4) == count,
             "descriptor count %u but %" PRIu64 " descriptors",
             load_be32(p + 4), count);
  for (i = 0; i < count && res->n_ext < EC_MAX_EXT; i++) {
    const uint8_t *d = p + hdr + i * each;
    struct ec_extent *e = &res->ext[res->n_ext++];

    e->length = ext ? load_be64(d) : load_be32(d);
    e->flags = load_be32(d + (ext ? 12 : 4));
    if (ext)
      EC_CHECK(c, load_be32(d + 8) == 0, "descriptor padding not zero");
    EC_CHECK(c, e->length != 0, "zero-length extent");
  }
}

/* Read one 32-byte extended reply header and its payload, and check the
 * fields that must echo the request. */
static int ec_recv_chunk(struct ec_conn *c, uint64_t cookie, uint64_t offset,
                         uint16_t *flags, uint16_t *type, uint8_t **payload,
                         uint64_t *len)
{
  uint8_t hdr[32];
  int r = ec_read_all(c, hdr, sizeof hdr);

  *payload = NULL;
  if (r < 0)
    return r;
  if (load_be32(hdr) != EC_EXT_REPLY_MAGIC) {
    ec_fail(c, "reply magic %#x, expected extended 0x6e8a278c", load_be32(hdr));
    return -EPROTO;
  }
  *flags = load_be16(hdr + 4);
  *type = load_be16(hdr + 6);
  EC_CHECK(c, load_be64(hdr + 8) == cookie, "reply cookie mismatch");
  EC_CHECK(c, load_be64(hdr + 16) == offset,
           "reply offset %" PRIu64 ", request offset %" PRIu64,
           load_be64(hdr + 16), offset);
  *len = load_be64(hdr + 24);
  if (*len > EC_MAX_CHUNK)
    return -EPROTO;
  if (*len == 0)
    return 0;
  *payload = malloc(*len);
  if (*payload == NULL)
    return -ENOMEM;
  return ec_read_all(c, *payload, *len);
}

/* One request and every chunk of its reply. */
static int ec_do(struct ec_conn *c, uint16_t type, uint16_t flags,
                 uint64_t offset, uint64_t length, const void *payload,
                 size_t plen, struct ec_result *res)
{
  uint8_t *buf = res->buf;
  uint16_t rflags = 0;
  int r;

  memset(res, 0, sizeof *res);
  res->buf = buf;
  r = ec_send_req(c, flags, type, offset, length, payload, plen);
  while (r == 0 && !(rflags & EC_REPLY_FLAG_DONE)) {
    uint16_t rtype;
    uint8_t *p;
    uint64_t len;

    r = ec_recv_chunk(c, c->cookie, offset, &rflags, &rtype, &p, &len);
    if (r < 0) {
      free(p);
      break;
    }
    if (rtype & EC_TYPE_ERROR_BIT) {
      if (len >= 6 && res->error == 0)
        res->error = load_be32(p);
      EC_CHECK(c, len >= 6 && load_be32(p) != 0, "malformed error chunk");
    } else if (rtype == EC_TYPE_OFFSET_DATA || rtype == EC_TYPE_OFFSET_HOLE) {
      if (type == EC_CMD_READ && res->buf != NULL)
        ec_content(c, res, rtype, p, len, offset, length);
      else
        ec_fail(c, "content chunk in reply to command %u", type);
    } else if (rtype == EC_TYPE_BLOCK_STATUS ||
               rtype == EC_TYPE_BLOCK_STATUS_EXT) {
      ec_status(c, res, rtype, p, len);
    } else if (rtype != EC_TYPE_NONE || len != 0) {
      ec_fail(c, "unexpected chunk type %u length %" PRIu64, rtype, len);
    }
    free(p);
  }
  return r;
}

/* --- The checks --- */

static void ec_fill(uint8_t *buf, size_t len, uint64_t seed)
{
  for (size_t i = 0; i < len; i++)
    buf[i] = (uint8_t)((seed + i) * 2654435761u >> 13);
}

static bool ec_all_zero(const uint8_t *buf, size_t len)
{
  for (size_t i = 0; i < len; i++)
    if (buf[i])
      return false;
  return true;
}

#define EC_IO 65536

/* WRITE with NBD_CMD_FLAG_PAYLOAD_LEN at offset, then READ it back. */
static int ec_write_read(struct ec_conn *c, struct ec_result *res,
                         uint64_t offset, uint64_t seed)
{
  uint8_t *w = malloc(EC_IO), *rd = malloc(EC_IO);
  int r = -ENOMEM;

  if (w == NULL || rd == NULL)
    goto out;
  ec_fill(w, EC_IO, seed);
  r = ec_do(c, EC_CMD_WRITE, EC_CMD_FLAG_PAYLOAD_LEN, offset, EC_IO, w, EC_IO,
            res);
  if (r < 0)
    goto out;
  EC_CHECK(c, res->error == 0, "WRITE at %" PRIu64 ": error %u", offset,
           res->error);
  res->buf = rd;
  r = ec_do(c, EC_CMD_READ, 0, offset, EC_IO, NULL, 0, res);
  res->buf = NULL;
  if (r < 0)
    goto out;
  EC_CHECK(
      c, res->error == 0 && res->covered == EC_IO && memcmp(w, rd, EC_IO) == 0,
      "READ back at %" PRIu64 ": error %u, %" PRIu64 " bytes, %s", offset,
      res->error, res->covered,
      memcmp(w, rd, EC_IO) ? "data differs" : "data equal");
out:
  free(w);
  free(rd);
  return r;
}

/* READ EC_IO bytes at offset; 1 if they are all zero, 0 if not. */
static int ec_read_is_zero(struct ec_conn *c, struct ec_result *res,
                           uint64_t offset)
{
  uint8_t *rd = malloc(EC_IO);
  int r;

  if (rd == NULL)
    return -ENOMEM;
  res->buf = rd;
  r = ec_do(c, EC_CMD_READ, 0, offset, EC_IO, NULL, 0, res);
  res->buf = NULL;
  if (r == 0) {
    EC_CHECK(c, res->error == 0 && res->covered == EC_IO,
             "READ at %" PRIu64 " failed", offset);
    r = ec_all_zero(rd, EC_IO);
  }
  free(rd);
  return r;
}

/* WRITE_ZEROES over 5 GiB starting at 1 GiB: one request, 64-bit length. */
static int ec_zero_64(struct ec_conn *c, struct ec_result *res)
{
  const uint64_t off = EC_GiB, len = 5 * EC_GiB;
  int r, z;

  if ((r = ec_write_read(c, res, 3 * EC_GiB + 512, 3)) < 0 ||
      (r = ec_write_read(c, res, off + len - EC_IO, 4)) < 0 ||
      (r = ec_write_read(c, res, off + len, 5)) < 0)
    return r;
  r = ec_do(c, EC_CMD_WRITE_ZEROES, 0, off, len, NULL, 0, res);
  if (r < 0)
    return r;
  EC_CHECK(c, res->error == 0, "WRITE_ZEROES of 5 GiB: error %u", res->error);
  if ((z = ec_read_is_zero(c, res, 3 * EC_GiB + 512)) < 0)
    return z;
  EC_CHECK(c, z == 1, "data at 3 GiB survived a 5 GiB WRITE_ZEROES");
  if ((z = ec_read_is_zero(c, res, off + len - EC_IO)) < 0)
    return z;
  EC_CHECK(c, z == 1, "data at 6 GiB - 64 KiB survived WRITE_ZEROES");
  if ((z = ec_read_is_zero(c, res, off + len)) < 0)
    return z;
  EC_CHECK(c, z == 0,
           "data just past the zeroed range was zeroed: the "
           "64-bit length was truncated or overrun");
  return 0;
}

/* BLOCK_STATUS over 7 GiB, and with REQ_ONE over the zeroed 5 GiB. */
static int ec_block_status(struct ec_conn *c, struct ec_result *res)
{
  uint64_t sum = 0;
  int r = ec_do(c, EC_CMD_BLOCK_STATUS, 0, 0, 7 * EC_GiB, NULL, 0, res);

  if (r < 0)
    return r;
  EC_CHECK(c, res->error == 0 && res->status_chunks == 1,
           "BLOCK_STATUS: error %u, %d status chunks", res->error,
           res->status_chunks);
  /* With extended headers the server uses BLOCK_STATUS_EXT. */
  EC_CHECK(c, res->status_types == 1u << EC_TYPE_BLOCK_STATUS_EXT,
           "BLOCK_STATUS reply types %#x, expected BLOCK_STATUS_EXT",
           res->status_types);
  for (size_t i = 0; i < res->n_ext; i++) {
    /* The data written at 6 GiB must not be reported as zero. */
    if (sum <= 6 * EC_GiB && sum + res->ext[i].length > 6 * EC_GiB)
      EC_CHECK(c, !(res->ext[i].flags & EC_STATE_ZERO),
               "written data at 6 GiB reported as zero");
    sum += res->ext[i].length;
  }
  EC_CHECK(c, sum > 0, "no extents");

  r = ec_do(c, EC_CMD_BLOCK_STATUS, EC_CMD_FLAG_REQ_ONE, EC_GiB, 5 * EC_GiB,
            NULL, 0, res);
  if (r < 0)
    return r;
  EC_CHECK(c, res->error == 0 && res->n_ext == 1,
           "REQ_ONE: error %u, %zu extents", res->error, res->n_ext);
  if (res->n_ext == 1) {
    EC_CHECK(c, res->ext[0].length <= 5 * EC_GiB,
             "REQ_ONE extent %" PRIu64 " longer than the request",
             res->ext[0].length);
    printf("REQ_ONE over the zeroed 5 GiB: one extent of %" PRIu64
           " bytes, flags %#x\n",
           res->ext[0].length, res->ext[0].flags);
  }
  return 0;
}

/* Requests that must fail with an extended error chunk, after which the
 * connection goes on. */
static int ec_errors(struct ec_conn *c, struct ec_result *res)
{
  uint8_t junk[512] = {0};
  uint8_t rd[512];
  int r;

  res->buf = rd;
  r = ec_do(c, EC_CMD_READ, 0, c->size - 256, 512, NULL, 0, res);
  res->buf = NULL;
  if (r < 0)
    return r;
  EC_CHECK(c, res->error == EC_EINVAL, "READ past the end: error %u",
           res->error);
  r = ec_do(c, EC_CMD_BLOCK_STATUS, 0, c->size, 512, NULL, 0, res);
  if (r < 0)
    return r;
  EC_CHECK(c, res->error == EC_EINVAL, "BLOCK_STATUS past the end: %u",
           res->error);
  r = ec_do(c, 77, 0, 0, 512, NULL, 0, res);
  if (r < 0)
    return r;
  EC_CHECK(c, res->error == EC_EINVAL, "unknown command: error %u", res->error);
  /* A payload on TRIM: "a server SHOULD gracefully consume length bytes
   * of payload ... and reply with an NBD_EINVAL failure". */
  r = ec_do(c, EC_CMD_TRIM, EC_CMD_FLAG_PAYLOAD_LEN, 0, sizeof junk, junk,
            sizeof junk, res);
  if (r < 0)
    return r;
  EC_CHECK(c, res->error == EC_EINVAL, "TRIM with a payload: error %u",
           res->error);
  return 0;
}

/* TRIM of 5 GiB, FLUSH, then DISC: the server closes without a reply. */
static int ec_trim_flush_disc(struct ec_conn *c, struct ec_result *res)
{
  uint8_t b;
  int r;

  if (c->tflags & EC_TF_SEND_TRIM) {
    r = ec_do(c, EC_CMD_TRIM, 0, EC_GiB, 5 * EC_GiB, NULL, 0, res);
    if (r < 0)
      return r;
    EC_CHECK(c, res->error == 0, "TRIM of 5 GiB: error %u", res->error);
  }
  if (c->tflags & EC_TF_SEND_FLUSH) {
    r = ec_do(c, EC_CMD_FLUSH, 0, 0, 0, NULL, 0, res);
    if (r < 0)
      return r;
    EC_CHECK(c, res->error == 0, "FLUSH: error %u", res->error);
  }
  if ((r = ec_send_req(c, 0, EC_CMD_DISC, 0, 0, NULL, 0)) < 0)
    return r;
  r = ec_read_all(c, &b, 1);
  EC_CHECK(c, r == -EPIPE, "after DISC: %s",
           r == 0 ? "server sent data" : strerror(-r));
  return 0;
}

int main(int argc, char **argv)
{
  struct ec_conn c = {.fd = -1};
  struct ec_result *res = calloc(1, sizeof *res);
  int r;

  if (argc < 2 || argc > 3 || res == NULL) {
    fprintf(stderr, "usage: %s SOCKET [EXPORT]\n", argv[0]);
    return 2;
  }
  if ((r = ec_connect(&c, argv[1])) < 0 ||
      (r = ec_handshake(&c, argc > 2 ? argv[2] : "")) < 0)
    goto out;
  if (c.size < 7 * EC_GiB || !(c.tflags & EC_TF_SEND_WRITE_ZEROES)) {
    ec_fail(&c,
            "export of %" PRIu64 " bytes, flags %#x: need > 7 GiB "
            "and WRITE_ZEROES",
            c.size, c.tflags);
    goto out;
  }
  /* An unaligned write only if the server allows it (we asked for
   * NBD_INFO_BLOCK_SIZE, so we must honour its minimum). */
  if ((r = ec_write_read(&c, res, 4 * EC_GiB + 4096, 1)) < 0 ||
      (r = ec_write_read(&c, res, c.min_block <= 1 ? 100 : 8192, 2)) < 0 ||
      (r = ec_zero_64(&c, res)) < 0 || (r = ec_block_status(&c, res)) < 0 ||
      (r = ec_errors(&c, res)) < 0 || (r = ec_trim_flush_disc(&c, res)) < 0)
    goto out;
out:
  if (r < 0)
    ec_fail(&c, "connection failed: %s", strerror(-r));
  if (c.fd >= 0)
    close(c.fd);
  free(res);
  printf("%s: %d failed checks\n", c.failures ? "FAIL" : "PASS", c.failures);
  return c.failures ? 1 : 0;
}
