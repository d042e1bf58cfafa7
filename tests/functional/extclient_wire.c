/* Wire helpers of qnbd-extclient: socket I/O, option haggling, and
 * 32-byte extended requests and reply chunks (doc/proto.md, "Extended
 * reply chunk message"). */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "extclient.h"
#include "util/endian.h"

void ec_fail(struct ec_conn *c, const char *fmt, ...)
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

static int ec_wait(int fd, short events)
{
  struct pollfd p = {.fd = fd, .events = events};
  int r = poll(&p, 1, 10000);

  if (r < 0)
    return -errno;
  return r == 0 ? -ETIMEDOUT : 0;
}

int ec_write_all(struct ec_conn *c, const void *buf, size_t len)
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
int ec_read_all(struct ec_conn *c, void *buf, size_t len)
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

int ec_connect(struct ec_conn *c, const char *path)
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

int ec_opt(struct ec_conn *c, uint32_t opt, const void *data, uint32_t len,
           uint32_t *final)
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

int ec_greet(struct ec_conn *c)
{
  uint8_t buf[18];
  int r = ec_read_all(c, buf, sizeof buf);

  if (r < 0)
    return r;
  if (load_be64(buf) != EC_NBDMAGIC || load_be64(buf + 8) != EC_IHAVEOPT ||
      !(load_be16(buf + 16) & EC_FLAG_FIXED_NEWSTYLE))
    return -EPROTO;
  store_be32(buf, EC_FLAG_FIXED_NEWSTYLE |
                      (load_be16(buf + 16) & EC_FLAG_NO_ZEROES));
  return ec_write_all(c, buf, 4);
}

int ec_set_meta(struct ec_conn *c, const char *name, uint32_t *final)
{
  uint8_t buf[4096 + 32];
  size_t nlen = strlen(name);

  if (nlen > 4096)
    return -ENAMETOOLONG;
  /* Name length, name, 1 query, its length, the query. */
  store_be32(buf, (uint32_t)nlen);
  memcpy(buf + 4, name, nlen);
  store_be32(buf + 4 + nlen, 1);
  store_be32(buf + 8 + nlen, 15);
  memcpy(buf + 12 + nlen, "base:allocation", 15);
  c->ctx_id = UINT32_MAX;
  return ec_opt(c, EC_OPT_SET_META_CONTEXT, buf, (uint32_t)(27 + nlen), final);
}

int ec_go(struct ec_conn *c, const char *name, uint32_t *final)
{
  uint8_t buf[4096 + 8];
  size_t nlen = strlen(name);

  if (nlen > 4096)
    return -ENAMETOOLONG;
  /* Name length, name, 1 info request (BLOCK_SIZE). */
  store_be32(buf, (uint32_t)nlen);
  memcpy(buf + 4, name, nlen);
  store_be16(buf + 4 + nlen, 1);
  store_be16(buf + 6 + nlen, EC_INFO_BLOCK_SIZE);
  return ec_opt(c, EC_OPT_GO, buf, (uint32_t)(8 + nlen), final);
}

/* --- Transmission with extended headers --- */

int ec_send_req(struct ec_conn *c, uint16_t flags, uint16_t type,
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

int ec_recv_chunk(struct ec_conn *c, struct ec_chunk *ch)
{
  uint8_t hdr[32];
  int r = ec_read_all(c, hdr, sizeof hdr);

  ch->payload = NULL;
  if (r < 0)
    return r;
  if (load_be32(hdr) != EC_EXT_REPLY_MAGIC) {
    ec_fail(c, "reply magic %#x, expected extended 0x6e8a278c", load_be32(hdr));
    return -EPROTO;
  }
  ch->flags = load_be16(hdr + 4);
  ch->type = load_be16(hdr + 6);
  ch->cookie = load_be64(hdr + 8);
  ch->offset = load_be64(hdr + 16);
  ch->len = load_be64(hdr + 24);
  /* "a client MAY initiate hard disconnect if a server's reply length
   * is unexpectedly large". */
  if (ch->len > EC_MAX_CHUNK)
    return -EPROTO;
  if (ch->len == 0)
    return 0;
  ch->payload = malloc(ch->len);
  if (ch->payload == NULL)
    return -ENOMEM;
  r = ec_read_all(c, ch->payload, ch->len);
  if (r < 0) {
    free(ch->payload);
    ch->payload = NULL;
  }
  return r;
}

void ec_absorb(struct ec_conn *c, struct ec_result *res, uint16_t cmd,
               uint64_t offset, uint64_t length, const struct ec_chunk *ch)
{
  const uint8_t *p = ch->payload;

  /* "offset ... MUST match the offset of the client's request". */
  EC_CHECK(c, ch->offset == offset,
           "reply offset %" PRIu64 ", request offset %" PRIu64, ch->offset,
           offset);
  if (ch->type & EC_TYPE_ERROR_BIT) {
    if (ch->len >= 6 && res->error == 0)
      res->error = load_be32(p);
    EC_CHECK(c, ch->len >= 6 && load_be32(p) != 0, "malformed error chunk");
  } else if (ch->type == EC_TYPE_OFFSET_DATA ||
             ch->type == EC_TYPE_OFFSET_HOLE) {
    if (cmd == EC_CMD_READ && res->buf != NULL)
      ec_content(c, res, ch->type, p, ch->len, offset, length);
    else
      ec_fail(c, "content chunk in reply to command %u", cmd);
  } else if (ch->type == EC_TYPE_BLOCK_STATUS ||
             ch->type == EC_TYPE_BLOCK_STATUS_EXT) {
    ec_status(c, res, ch->type, p, ch->len);
  } else if (ch->type != EC_TYPE_NONE || ch->len != 0) {
    ec_fail(c, "unexpected chunk type %u length %" PRIu64, ch->type, ch->len);
  }
}

int ec_do(struct ec_conn *c, uint16_t type, uint16_t flags, uint64_t offset,
          uint64_t length, const void *payload, size_t plen,
          struct ec_result *res)
{
  uint8_t *buf = res->buf;
  struct ec_chunk ch = {0};
  int r;

  memset(res, 0, sizeof *res);
  res->buf = buf;
  r = ec_send_req(c, flags, type, offset, length, payload, plen);
  while (r == 0 && !(ch.flags & EC_REPLY_FLAG_DONE)) {
    r = ec_recv_chunk(c, &ch);
    if (r < 0)
      break;
    EC_CHECK(c, ch.cookie == c->cookie, "reply cookie mismatch");
    ec_absorb(c, res, type, offset, length, &ch);
    free(ch.payload);
  }
  return r;
}
