/* NBD wire constants (doc/proto.md of the NBD project, with the
 * extended-headers extension).  Values written from the spec text. */
#ifndef QNBD_SERVER_PROTOCOL_H
#define QNBD_SERVER_PROTOCOL_H

#define NBDMAGIC  0x4e42444d41474943ULL /* "NBDMAGIC" */
#define IHAVEOPT  0x49484156454f5054ULL /* "IHAVEOPT" */
#define REP_MAGIC 0x3e889045565a9ULL    /* option reply magic */

/* Handshake flags (server) and client flags. */
#define FLAG_FIXED_NEWSTYLE   (1u << 0)
#define FLAG_NO_ZEROES        (1u << 1)
#define FLAG_C_FIXED_NEWSTYLE (1u << 0)
#define FLAG_C_NO_ZEROES      (1u << 1)

/* Options. */
enum {
  OPT_EXPORT_NAME = 1,
  OPT_ABORT = 2,
  OPT_LIST = 3,
  OPT_STARTTLS = 5,
  OPT_INFO = 6,
  OPT_GO = 7,
  OPT_STRUCTURED_REPLY = 8,
  OPT_LIST_META_CONTEXT = 9,
  OPT_SET_META_CONTEXT = 10,
  OPT_EXTENDED_HEADERS = 11,
};

/* Option replies. */
#define REP_ACK                 1u
#define REP_SERVER              2u
#define REP_INFO                3u
#define REP_META_CONTEXT        4u
#define REP_ERR(n)              ((1u << 31) + (n))
#define REP_ERR_UNSUP           REP_ERR(1)
#define REP_ERR_POLICY          REP_ERR(2)
#define REP_ERR_INVALID         REP_ERR(3)
#define REP_ERR_PLATFORM        REP_ERR(4)
#define REP_ERR_TLS_REQD        REP_ERR(5)
#define REP_ERR_UNKNOWN         REP_ERR(6)
#define REP_ERR_SHUTDOWN        REP_ERR(7)
#define REP_ERR_BLOCK_SIZE_REQD REP_ERR(8)
#define REP_ERR_TOO_BIG         REP_ERR(9)
#define REP_ERR_EXT_HEADER_REQD REP_ERR(10)

/* NBD_OPT_INFO / GO information types. */
enum {
  INFO_EXPORT = 0,
  INFO_NAME = 1,
  INFO_DESCRIPTION = 2,
  INFO_BLOCK_SIZE = 3,
};

/* Transmission flags. */
#define TF_HAS_FLAGS            (1u << 0)
#define TF_READ_ONLY            (1u << 1)
#define TF_SEND_FLUSH           (1u << 2)
#define TF_SEND_FUA             (1u << 3)
#define TF_ROTATIONAL           (1u << 4)
#define TF_SEND_TRIM            (1u << 5)
#define TF_SEND_WRITE_ZEROES    (1u << 6)
#define TF_SEND_DF              (1u << 7)
#define TF_CAN_MULTI_CONN       (1u << 8)
#define TF_SEND_RESIZE          (1u << 9)
#define TF_SEND_CACHE           (1u << 10)
#define TF_SEND_FAST_ZERO       (1u << 11)
#define TF_BLOCK_STATUS_PAYLOAD (1u << 12)

/* Requests and replies. */
#define REQUEST_MAGIC          0x25609513u
#define EXT_REQUEST_MAGIC      0x21e41c71u
#define SIMPLE_REPLY_MAGIC     0x67446698u
#define STRUCTURED_REPLY_MAGIC 0x668e33efu
#define EXT_REPLY_MAGIC        0x6e8a278cu

#define REQ_HDR_SIZE        28
#define EXT_REQ_HDR_SIZE    32
#define SIMPLE_REPLY_SIZE   16
#define STRUCTURED_HDR_SIZE 20
#define EXT_REPLY_HDR_SIZE  32

enum {
  CMD_READ = 0,
  CMD_WRITE = 1,
  CMD_DISC = 2,
  CMD_FLUSH = 3,
  CMD_TRIM = 4,
  CMD_CACHE = 5,
  CMD_WRITE_ZEROES = 6,
  CMD_BLOCK_STATUS = 7,
};

#define CMD_FLAG_FUA         (1u << 0)
#define CMD_FLAG_NO_HOLE     (1u << 1)
#define CMD_FLAG_DF          (1u << 2)
#define CMD_FLAG_REQ_ONE     (1u << 3)
#define CMD_FLAG_FAST_ZERO   (1u << 4)
#define CMD_FLAG_PAYLOAD_LEN (1u << 5)

#define REPLY_FLAG_DONE (1u << 0)
enum {
  REPLY_TYPE_NONE = 0,
  REPLY_TYPE_OFFSET_DATA = 1,
  REPLY_TYPE_OFFSET_HOLE = 2,
  REPLY_TYPE_BLOCK_STATUS = 5,
  REPLY_TYPE_BLOCK_STATUS_EXT = 6,
  REPLY_TYPE_ERROR = (1 << 15) + 1,
  REPLY_TYPE_ERROR_OFFSET = (1 << 15) + 2,
};

/* Errors on the wire. */
enum {
  WIRE_EPERM = 1,
  WIRE_EIO = 5,
  WIRE_ENOMEM = 12,
  WIRE_EINVAL = 22,
  WIRE_ENOSPC = 28,
  WIRE_EOVERFLOW = 75,
  WIRE_ENOTSUP = 95,
  WIRE_ESHUTDOWN = 108,
};

#endif
