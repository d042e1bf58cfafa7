/* Shared declarations of qnbd-extclient: the wire constants of the NBD
 * spec ("Values" section, extended headers extension), the connection
 * and result structures, and the wire helpers of extclient_wire.c. */
#ifndef QNBD_EXTCLIENT_H
#define QNBD_EXTCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

#define EC_STATE_ZERO              2u
#define EC_EINVAL                  22u
#define EC_REP_ERR_INVALID         (EC_REP_ERR_BIT + 3)
#define EC_REP_ERR_EXT_HEADER_REQD (EC_REP_ERR_BIT + 10)

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

/* One reply chunk: the 32-byte extended header and its payload. */
struct ec_chunk {
  uint16_t flags;
  uint16_t type;
  uint64_t cookie;
  uint64_t offset;
  uint64_t len;
  uint8_t *payload; /* malloc'ed, NULL when len is 0 */
};

void ec_fail(struct ec_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define EC_CHECK(c, cond, ...)                                                 \
  do {                                                                         \
    if (!(cond))                                                               \
      ec_fail((c), __VA_ARGS__);                                               \
  } while (0)

/* All return 0 or a negative errno (-EPIPE: the server closed). */
int ec_connect(struct ec_conn *c, const char *path);
int ec_write_all(struct ec_conn *c, const void *buf, size_t len);
int ec_read_all(struct ec_conn *c, void *buf, size_t len);
/* Read the greeting and send the client flags. */
int ec_greet(struct ec_conn *c);
/* Send an option and drain its replies; *final is the last reply type. */
int ec_opt(struct ec_conn *c, uint32_t opt, const void *data, uint32_t len,
           uint32_t *final);
/* SET_META_CONTEXT base:allocation for name (sets c->ctx_id). */
int ec_set_meta(struct ec_conn *c, const char *name, uint32_t *final);
/* GO asking for NBD_INFO_BLOCK_SIZE (sets size, tflags, min_block). */
int ec_go(struct ec_conn *c, const char *name, uint32_t *final);

/* An extended request (cookie ++c->cookie) with an optional payload. */
int ec_send_req(struct ec_conn *c, uint16_t flags, uint16_t type,
                uint64_t offset, uint64_t length, const void *payload,
                size_t plen);
/* The next reply chunk, whatever request it answers. */
int ec_recv_chunk(struct ec_conn *c, struct ec_chunk *ch);
/* Fold a chunk answering (cmd, offset, length) into res. */
void ec_absorb(struct ec_conn *c, struct ec_result *res, uint16_t cmd,
               uint64_t offset, uint64_t length, const struct ec_chunk *ch);
/* One request and every chunk of its reply (res->buf: READ target). */
int ec_do(struct ec_conn *c, uint16_t type, uint16_t flags, uint64_t offset,
          uint64_t length, const void *payload, size_t plen,
          struct ec_result *res);

#endif
