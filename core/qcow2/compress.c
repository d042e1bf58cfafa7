/* Decompressing one cluster: raw deflate or zstd, the output must fill
 * the cluster exactly (qcow2.txt "Compressed Clusters Descriptor",
 * header byte 104 "compression type"). */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "qcow2-int.h"

/* Raw deflate (no zlib header).  The input may run past the end of the
 * stream (it is only known to the 512-byte sector), so stopping when the
 * cluster is full is success. */
static int inflate_cluster(const uint8_t *in, size_t in_len, uint8_t *out,
                           size_t out_len)
{
  z_stream z;
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, -15) != Z_OK)
    return -ENOMEM;
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)in_len;
  z.next_out = out;
  z.avail_out = (uInt)out_len;
  int r = inflate(&z, Z_FINISH);
  int ok =
      (r == Z_STREAM_END || r == Z_BUF_ERROR || r == Z_OK) && z.avail_out == 0;
  inflateEnd(&z);
  return ok ? 0 : -EIO;
}

/* One or more zstd frames filling the cluster. */
static int unzstd_cluster(void **ctx, const uint8_t *in, size_t in_len,
                          uint8_t *out, size_t out_len)
{
  if (!*ctx && !(*ctx = ZSTD_createDCtx()))
    return -ENOMEM;
  ZSTD_DCtx *dctx = *ctx;
  ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only);
  ZSTD_inBuffer ib = {in, in_len, 0};
  ZSTD_outBuffer ob = {out, out_len, 0};
  while (ob.pos < ob.size) {
    size_t prev_in = ib.pos, prev_out = ob.pos;
    size_t r = ZSTD_decompressStream(dctx, &ob, &ib);
    if (ZSTD_isError(r))
      return -EIO;
    if (ib.pos == prev_in && ob.pos == prev_out)
      break; /* no progress: input exhausted */
  }
  return ob.pos == ob.size ? 0 : -EIO;
}

void qcow2_decompress_free(void *ctx)
{
  ZSTD_freeDCtx(ctx);
}

int qcow2_decompress(int type, void **ctx, const uint8_t *in, size_t in_len,
                     uint8_t *out, size_t out_len)
{
  if (in_len > UINT_MAX || out_len > UINT_MAX)
    return -EIO;
  return type == 1 ? unzstd_cluster(ctx, in, in_len, out, out_len)
                   : inflate_cluster(in, in_len, out, out_len);
}
