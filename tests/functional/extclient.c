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
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "extclient.h"
#include "util/endian.h"

/* The main session's negotiation: STRUCTURED_REPLY first (a client MAY),
 * then EXTENDED_HEADERS, which takes precedence. */
static int ec_handshake(struct ec_conn *c, const char *name)
{
  uint32_t final;
  int r;

  if ((r = ec_greet(c)) < 0 ||
      (r = ec_opt(c, EC_OPT_STRUCTURED_REPLY, NULL, 0, &final)) < 0)
    return r;
  EC_CHECK(c, final == EC_REP_ACK, "STRUCTURED_REPLY: reply %#x", final);
  /* "The client MUST NOT send any additional data with the option, and
   * the server SHOULD reject a request that includes data with
   * NBD_REP_ERR_INVALID." */
  if ((r = ec_opt(c, EC_OPT_EXTENDED_HEADERS, "x", 1, &final)) < 0)
    return r;
  EC_CHECK(c, final == EC_REP_ERR_INVALID,
           "EXTENDED_HEADERS with data: reply %#x, expected ERR_INVALID",
           final);
  if ((r = ec_opt(c, EC_OPT_EXTENDED_HEADERS, NULL, 0, &final)) < 0)
    return r;
  if (final != EC_REP_ACK) {
    ec_fail(c, "EXTENDED_HEADERS: reply %#x, expected ACK", final);
    return -ENOTSUP;
  }
  /* STRUCTURED_REPLY again cannot downgrade: ERR_EXT_HEADER_REQD, or an
   * ACK after which replies stay extended (checked on every reply). */
  if ((r = ec_opt(c, EC_OPT_STRUCTURED_REPLY, NULL, 0, &final)) < 0)
    return r;
  EC_CHECK(c, final == EC_REP_ACK || final == EC_REP_ERR_EXT_HEADER_REQD,
           "STRUCTURED_REPLY after EXTENDED_HEADERS: reply %#x", final);
  if ((r = ec_set_meta(c, name, &final)) < 0)
    return r;
  EC_CHECK(c, final == EC_REP_ACK && c->ctx_id != UINT32_MAX,
           "SET_META_CONTEXT base:allocation: reply %#x", final);
  if ((r = ec_go(c, name, &final)) < 0)
    return r;
  if (final != EC_REP_ACK) {
    ec_fail(c, "GO: reply %#x", final);
    return -EPROTO;
  }
  return 0;
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

/* 64-bit lengths that a server truncating to 32 bits, or computing
 * offset + length without overflow checks, would get wrong. */
static int ec_errors_64(struct ec_conn *c, struct ec_result *res)
{
  const uint64_t wrap = UINT64_MAX - EC_GiB + 1 + 4096; /* 1 GiB + wrap */
  uint8_t *w = malloc(EC_IO), *rd = malloc(EC_IO);
  uint64_t at = c->min_block <= 1 ? 100 : 8192;
  int r = -ENOMEM;

  if (w == NULL || rd == NULL)
    goto out;
  /* 4 GiB + 512: above any maximum payload.  The spec lets a server
   * split big reads, but qnbd refuses them; truncated to 32 bits it
   * would answer 512 bytes of content. */
  res->buf = rd;
  r = ec_do(c, EC_CMD_READ, 0, 0, 4 * EC_GiB + 512, NULL, 0, res);
  res->buf = NULL;
  if (r < 0)
    goto out;
  EC_CHECK(c, res->error != 0 && res->covered == 0,
           "READ of 4 GiB + 512: error %u, %" PRIu64 " bytes", res->error,
           res->covered);
  r = ec_do(c, EC_CMD_WRITE_ZEROES, 0, EC_GiB, wrap, NULL, 0, res);
  if (r < 0)
    goto out;
  EC_CHECK(c, res->error == EC_EINVAL || res->error == 28,
           "WRITE_ZEROES wrapping 2^64: error %u", res->error);
  r = ec_do(c, EC_CMD_TRIM, 0, EC_GiB, wrap, NULL, 0, res);
  if (r < 0)
    goto out;
  EC_CHECK(c, res->error != 0, "TRIM wrapping 2^64 succeeded");
  /* The data written at the start is intact. */
  ec_fill(w, EC_IO, 2);
  res->buf = rd;
  r = ec_do(c, EC_CMD_READ, 0, at, EC_IO, NULL, 0, res);
  res->buf = NULL;
  if (r == 0)
    EC_CHECK(c, res->error == 0 && memcmp(w, rd, EC_IO) == 0,
             "data at %" PRIu64 " changed by failed requests", at);
out:
  free(w);
  free(rd);
  return r;
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

#define EC_NPIPE 16

/* Receive every chunk of n requests with cookies first.. (any order,
 * interleaved) and fold each into rs[cookie - first]. */
static int ec_collect(struct ec_conn *c, struct ec_result *rs, uint64_t first,
                      int n, uint16_t cmd, uint64_t base)
{
  int done = 0, r = 0;

  while (done < n && r == 0) {
    struct ec_chunk ch;
    uint64_t i;

    if ((r = ec_recv_chunk(c, &ch)) < 0)
      break;
    i = ch.cookie - first;
    if (ch.cookie < first || i >= (uint64_t)n) {
      ec_fail(c, "reply for unknown cookie %" PRIu64, ch.cookie);
      r = -EPROTO;
    } else {
      ec_absorb(c, &rs[i], cmd, base + i * EC_IO, EC_IO, &ch);
      if (ch.flags & EC_REPLY_FLAG_DONE)
        done++;
    }
    free(ch.payload);
  }
  return r;
}

/* 16 WRITEs in flight, then 16 READs in flight: replies may come in any
 * order, each must carry its own cookie and offset. */
static int ec_pipeline(struct ec_conn *c)
{
  const uint64_t base = 4 * EC_GiB + 8 * EC_IO;
  struct ec_result *rs = calloc(EC_NPIPE, sizeof *rs);
  uint8_t *w = malloc(EC_NPIPE * EC_IO), *rd = calloc(EC_NPIPE, EC_IO);
  uint64_t first = c->cookie + 1;
  int r = -ENOMEM, i;

  if (rs == NULL || w == NULL || rd == NULL)
    goto out;
  for (i = 0, r = 0; i < EC_NPIPE && r == 0; i++) {
    ec_fill(w + i * EC_IO, EC_IO, 50 + (uint64_t)i);
    r = ec_send_req(c, EC_CMD_FLAG_PAYLOAD_LEN, EC_CMD_WRITE,
                    base + (uint64_t)i * EC_IO, EC_IO, w + i * EC_IO, EC_IO);
  }
  if (r < 0 || (r = ec_collect(c, rs, first, EC_NPIPE, EC_CMD_WRITE, base)) < 0)
    goto out;
  first = c->cookie + 1;
  for (i = 0; i < EC_NPIPE; i++) {
    EC_CHECK(c, rs[i].error == 0, "pipelined WRITE %d: error %u", i,
             rs[i].error);
    memset(&rs[i], 0, sizeof rs[i]);
    rs[i].buf = rd + i * EC_IO;
    if ((r = ec_send_req(c, 0, EC_CMD_READ, base + (uint64_t)i * EC_IO, EC_IO,
                         NULL, 0)) < 0)
      goto out;
  }
  if ((r = ec_collect(c, rs, first, EC_NPIPE, EC_CMD_READ, base)) < 0)
    goto out;
  for (i = 0; i < EC_NPIPE; i++)
    EC_CHECK(c, rs[i].error == 0 && rs[i].covered == EC_IO,
             "pipelined READ %d: error %u", i, rs[i].error);
  EC_CHECK(c, memcmp(w, rd, EC_NPIPE * EC_IO) == 0,
           "pipelined READs differ from the WRITEs");
out:
  free(rs);
  free(w);
  free(rd);
  return r;
}

/* Connect and negotiate EXTENDED_HEADERS (only) and GO. */
static int ec_open_ext(struct ec_conn *c, const char *path, const char *name,
                       bool meta)
{
  uint32_t final;
  int r;

  if ((r = ec_connect(c, path)) < 0 || (r = ec_greet(c)) < 0 ||
      (r = ec_opt(c, EC_OPT_EXTENDED_HEADERS, NULL, 0, &final)) < 0)
    return r;
  if (final != EC_REP_ACK)
    return -ENOTSUP;
  /* Extended headers alone permit SET_META_CONTEXT: "MUST NOT be
   * requested unless structured replies or extended headers have been
   * negotiated first". */
  if (meta && (r = ec_set_meta(c, name, &final)) < 0)
    return r;
  if (meta)
    EC_CHECK(c, final == EC_REP_ACK && c->ctx_id != UINT32_MAX,
             "SET_META_CONTEXT with only extended headers: reply %#x", final);
  if ((r = ec_go(c, name, &final)) < 0)
    return r;
  return final == EC_REP_ACK ? 0 : -EPROTO;
}

/* Expect the server to hang up (reading whatever it still sends). */
static void ec_expect_close(struct ec_conn *c, const char *what)
{
  struct ec_chunk ch;
  int r;

  while ((r = ec_recv_chunk(c, &ch)) == 0)
    free(ch.payload);
  EC_CHECK(c, r == -EPIPE || r == -ECONNRESET,
           "no hard disconnect after %s: %s", what, strerror(-r));
}

/* A session with extended headers only: BLOCK_STATUS, then a compact
 * request header, which is bad magic now. */
static int ec_session_ext_only(const char *path, const char *name,
                               struct ec_result *res)
{
  struct ec_conn c = {.fd = -1};
  uint8_t hdr[32] = {0};
  int r;

  if ((r = ec_open_ext(&c, path, name, true)) < 0 ||
      (r = ec_do(&c, EC_CMD_BLOCK_STATUS, 0, 0, EC_GiB, NULL, 0, res)) < 0)
    goto out;
  EC_CHECK(&c,
           res->error == 0 && res->status_chunks == 1 &&
               res->status_types == 1u << EC_TYPE_BLOCK_STATUS_EXT,
           "BLOCK_STATUS, extended headers only: error %u, types %#x",
           res->error, res->status_types);
  store_be32(hdr, 0x25609513); /* NBD_REQUEST_MAGIC, padded to 32 bytes */
  store_be64(hdr + 8, 99);
  store_be32(hdr + 24, 512);
  if ((r = ec_write_all(&c, hdr, sizeof hdr)) < 0)
    goto out;
  ec_expect_close(&c, "a compact request under extended headers");
out:
  if (r < 0)
    ec_fail(&c, "extended-only session: %s", strerror(-r));
  if (c.fd >= 0)
    close(c.fd);
  return c.failures;
}

/* "A server SHOULD initiate hard disconnect if a client sets the
 * NBD_CMD_FLAG_PAYLOAD_LEN flag and uses a length larger than a server's
 * advertised or default maximum payload length". */
static int ec_session_oversize(const char *path, const char *name)
{
  struct ec_conn c = {.fd = -1};
  int r;

  if ((r = ec_open_ext(&c, path, name, false)) < 0 ||
      (r = ec_send_req(&c, EC_CMD_FLAG_PAYLOAD_LEN, EC_CMD_WRITE, 0, 2 * EC_GiB,
                       NULL, 0)) < 0)
    goto out;
  ec_expect_close(&c, "a 2 GiB WRITE payload");
out:
  if (r < 0)
    ec_fail(&c, "oversize session: %s", strerror(-r));
  if (c.fd >= 0)
    close(c.fd);
  return c.failures;
}

int main(int argc, char **argv)
{
  struct ec_conn c = {.fd = -1};
  struct ec_result *res = calloc(1, sizeof *res);
  const char *name = argc > 2 ? argv[2] : "";
  int r, failures;

  if (argc < 2 || argc > 3 || res == NULL) {
    fprintf(stderr, "usage: %s SOCKET [EXPORT]\n", argv[0]);
    return 2;
  }
  if ((r = ec_connect(&c, argv[1])) < 0 || (r = ec_handshake(&c, name)) < 0)
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
      (r = ec_pipeline(&c)) < 0 || (r = ec_zero_64(&c, res)) < 0 ||
      (r = ec_block_status(&c, res)) < 0 || (r = ec_errors(&c, res)) < 0 ||
      (r = ec_errors_64(&c, res)) < 0 || (r = ec_trim_flush_disc(&c, res)) < 0)
    goto out;
out:
  if (r < 0)
    ec_fail(&c, "connection failed: %s", strerror(-r));
  if (c.fd >= 0)
    close(c.fd);
  failures = c.failures;
  if (r == 0)
    failures += ec_session_ext_only(argv[1], name, res) +
                ec_session_oversize(argv[1], name);
  free(res);
  printf("%s: %d failed checks\n", failures ? "FAIL" : "PASS", failures);
  return failures ? 1 : 0;
}
