/* Unit tests of the qcow2 engine (core/qcow2) on images built here byte
 * by byte: every cluster type (data, zero, unallocated, compressed with
 * deflate and zstd), extended L2 subclusters, block status, a corrupt
 * entry failing with EIO, header refusals, and many threads reading
 * through a cache much smaller than the metadata. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "check.h"
#include "qcow2/qcow2.h"
#include "util/endian.h"
#include "util/log.h"

enum ctype { C_UNALLOC, C_DATA, C_ZERO, C_DEFLATE, C_ZSTD };

/* An image under construction: header at cluster 0, L1 at 1, refcount
 * table at 2, refcount block at 3, then L2 tables and data. */
struct mk {
  int fd;
  unsigned cb;
  bool ext;
  int ctype_hdr; /* header compression type */
  uint64_t size, next, cs;
  uint32_t l1_size;
  uint64_t *l1;   /* L2 offsets */
  uint8_t *types; /* per guest cluster */
};

static char tmpdir[] = "/tmp/qnbd-qcow2.XXXXXX";

static uint8_t pat(uint64_t x)
{
  return (uint8_t)((x >> 9) * 31 + (x >> 4) % 7 + 1);
}

static void pw(struct mk *m, const void *p, size_t n, uint64_t off)
{
  CHECK(pwrite(m->fd, p, n, (off_t)off) == (ssize_t)n);
}

static void mk_begin(struct mk *m, const char *path, unsigned cb, bool ext,
                     uint64_t size, int ctype)
{
  memset(m, 0, sizeof *m);
  m->fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  CHECK(m->fd >= 0);
  m->cb = cb;
  m->ext = ext;
  m->cs = 1ull << cb;
  m->size = size;
  m->ctype_hdr = ctype;
  uint64_t span = m->cs * (m->cs / (ext ? 16 : 8));
  m->l1_size = (uint32_t)((size + span - 1) / span);
  CHECK(m->l1_size * 8 <= m->cs);
  m->l1 = calloc(m->l1_size, 8);
  m->types = calloc(size >> cb, 1);
  m->next = 4 * m->cs;
}

/* The L2 entry's file offset for guest offset g (table made on demand). */
static uint64_t mk_entry(struct mk *m, uint64_t g)
{
  uint64_t per = m->cs / (m->ext ? 16 : 8);
  uint64_t i = (g >> m->cb) / per;
  if (!m->l1[i]) {
    m->l1[i] = m->next;
    m->next += m->cs;
    uint8_t *z = calloc(1, m->cs);
    pw(m, z, m->cs, m->l1[i]);
    free(z);
  }
  return m->l1[i] + ((g >> m->cb) % per) * (m->ext ? 16 : 8);
}

static void mk_set(struct mk *m, uint64_t g, uint64_t e, uint64_t bm)
{
  uint8_t b[16];
  store_be64(b, e);
  store_be64(b + 8, bm);
  pw(m, b, m->ext ? 16 : 8, mk_entry(m, g));
}

static void fill(uint8_t *buf, uint64_t g, uint64_t n)
{
  for (uint64_t i = 0; i < n; i++)
    buf[i] = pat(g + i);
}

static void mk_data(struct mk *m, uint64_t g)
{
  uint8_t *buf = malloc(m->cs);
  mk_entry(m, g); /* the L2 table first: it takes m->next */
  fill(buf, g, m->cs);
  pw(m, buf, m->cs, m->next);
  mk_set(m, g, m->next | (1ull << 63), m->ext ? 0xffffffffull : 0);
  m->next += m->cs;
  m->types[g >> m->cb] = C_DATA;
  free(buf);
}

static void mk_zero(struct mk *m, uint64_t g)
{
  mk_set(m, g, m->ext ? 0 : 1, m->ext ? 0xffffffff00000000ull : 0);
  m->types[g >> m->cb] = C_ZERO;
}

/* A compressed cluster at an unaligned host offset (qcow2.txt
 * "Compressed Clusters Descriptor"). */
static void mk_compressed(struct mk *m, uint64_t g, bool zstd)
{
  uint8_t *in = malloc(m->cs), *out = malloc(2 * m->cs + 64);
  fill(in, g, m->cs);
  size_t len;
  if (zstd) {
    len = ZSTD_compress(out, 2 * m->cs, in, m->cs, 3);
    CHECK(!ZSTD_isError(len));
  } else {
    z_stream z = {0};
    CHECK(deflateInit2(&z, 6, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) == Z_OK);
    z.next_in = in;
    z.avail_in = (uInt)m->cs;
    z.next_out = out;
    z.avail_out = (uInt)(2 * m->cs);
    CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END);
    len = z.total_out;
    deflateEnd(&z);
  }
  mk_entry(m, g);
  uint64_t host = m->next + 200; /* deliberately not sector aligned */
  pw(m, out, len, host);
  uint64_t nsec = (host + len - 1) / 512 - host / 512; /* additional */
  unsigned x = 62 - (m->cb - 8);
  mk_set(m, g, (1ull << 62) | (nsec << x) | host, 0);
  m->next = (host + len + m->cs - 1) & ~(m->cs - 1);
  m->types[g >> m->cb] = zstd ? C_ZSTD : C_DEFLATE;
  free(in);
  free(out);
}

static void mk_end(struct mk *m)
{
  uint8_t h[112] = {0};
  store_be32(h, 0x514649fb);
  store_be32(h + 4, 3);
  store_be32(h + 20, m->cb);
  store_be64(h + 24, m->size);
  store_be32(h + 36, m->l1_size);
  store_be64(h + 40, m->cs);
  store_be64(h + 48, 2 * m->cs);
  store_be32(h + 56, 1);
  store_be64(h + 72, (m->ext ? 16 : 0) | (m->ctype_hdr ? 8 : 0));
  store_be32(h + 96, 4);
  store_be32(h + 100, 112);
  h[104] = (uint8_t)m->ctype_hdr;
  pw(m, h, sizeof h, 0);
  uint8_t e[8];
  for (uint32_t i = 0; i < m->l1_size; i++) {
    store_be64(e, m->l1[i] ? m->l1[i] | (1ull << 63) : 0);
    pw(m, e, 8, m->cs + i * 8);
  }
  store_be64(e, 3 * m->cs);
  pw(m, e, 8, 2 * m->cs);
  /* Refcount 1 for every cluster used (16-bit entries). */
  uint64_t n = m->next / m->cs;
  CHECK(n <= m->cs / 2);
  uint8_t *rb = calloc(1, m->cs);
  for (uint64_t i = 0; i < n; i++)
    store_be16(rb + 2 * i, 1);
  pw(m, rb, m->cs, 3 * m->cs);
  free(rb);
  CHECK(ftruncate(m->fd, (off_t)m->next) == 0);
  close(m->fd);
  free(m->l1);
}

static void expect(const struct mk *m, uint8_t *buf, uint64_t off, uint64_t n)
{
  for (uint64_t i = 0; i < n; i++) {
    int t = m->types[(off + i) >> m->cb];
    buf[i] = t == C_DATA || t == C_DEFLATE || t == C_ZSTD ? pat(off + i) : 0;
  }
}

static void check_range(struct qcow2_image *img, const struct mk *m,
                        uint64_t off, uint64_t n)
{
  uint8_t *got = malloc(n), *want = malloc(n);
  CHECK_OK(qcow2_pread(img, got, n, off));
  expect(m, want, off, n);
  for (uint64_t i = 0; i < n; i++)
    if (got[i] != want[i]) {
      fprintf(stderr,
              "cluster size %" PRIu64 ": byte %" PRIu64
              " (cluster type %d) is %u, not %u\n",
              m->cs, off + i, m->types[(off + i) >> m->cb], got[i], want[i]);
      exit(1);
    }
  free(got);
  free(want);
}

static void path_of(char *buf, const char *name)
{
  snprintf(buf, 512, "%s/%s", tmpdir, name);
}

static struct qcow2_image *open_img(const char *path, uint64_t cache)
{
  struct qcow2_open_opts o = {.readonly = true, .cache_size = cache};
  struct qcow2_image *img;
  CHECK_OK(qcow2_open(path, &o, &img));
  return img;
}

static unsigned status_at(struct qcow2_image *img, uint64_t off, uint64_t n,
                          uint64_t *len)
{
  struct qcow2_status st;
  CHECK_OK(qcow2_block_status(img, off, n, &st));
  *len = st.length;
  return st.flags;
}

/* Every cluster type, read whole, across boundaries, and its status. */
static void test_types(unsigned cb, int ctype)
{
  char p[512];
  path_of(p, "types.qcow2");
  struct mk m;
  uint64_t cs = 1ull << cb, size = 16 * cs;
  mk_begin(&m, p, cb, false, size, ctype);
  mk_data(&m, 0);
  mk_zero(&m, cs);
  mk_compressed(&m, 3 * cs, ctype == 1);
  mk_compressed(&m, 4 * cs, ctype == 1);
  mk_data(&m, 5 * cs);
  mk_data(&m, 6 * cs);
  mk_data(&m, size - cs);
  mk_end(&m);
  struct qcow2_image *img = open_img(p, 0);
  CHECK_EQ(qcow2_size(img), size);
  check_range(img, &m, 0, size);
  check_range(img, &m, cs - 100, 3 * cs + 200);
  check_range(img, &m, 3 * cs + 17, 2 * cs);
  check_range(img, &m, size - 1, 1);
  uint64_t len;
  const unsigned D = QCOW2_BS_DATA | QCOW2_BS_PRESENT;
  CHECK_EQ(status_at(img, 0, size, &len), D | QCOW2_BS_OFFSET_VALID);
  CHECK_EQ(len, cs);
  CHECK_EQ(status_at(img, cs, size - cs, &len),
           QCOW2_BS_ZERO | QCOW2_BS_PRESENT);
  CHECK_EQ(len, cs);
  CHECK_EQ(status_at(img, 2 * cs, size - 2 * cs, &len), QCOW2_BS_ZERO);
  CHECK_EQ(len, cs);
  CHECK_EQ(status_at(img, 3 * cs, size - 3 * cs, &len), D);
  CHECK_EQ(len, cs); /* one compressed cluster per run */
  /* Two contiguous data clusters merge into one run. */
  CHECK_EQ(status_at(img, 5 * cs + 1, size - 5 * cs - 1, &len),
           D | QCOW2_BS_OFFSET_VALID);
  CHECK_EQ(len, 2 * cs - 1);
  unsigned depth;
  CHECK_OK(qcow2_allocation_depth(img, 2 * cs, cs, &len, &depth));
  CHECK_EQ(depth, 0);
  CHECK_OK(qcow2_allocation_depth(img, cs, cs, &len, &depth));
  CHECK_EQ(depth, 1);
  const struct qcow2_info *in = qcow2_get_info(img);
  CHECK_EQ(in->cluster_size, cs);
  CHECK(strcmp(in->compression, ctype ? "zstd" : "zlib") == 0);
  CHECK_ERR(qcow2_pread(img, &len, 8, size - 4), EINVAL);
  qcow2_close(img);
  free(m.types);
}

/* Extended L2: 32 subclusters of 512 B in a 16 KiB cluster. */
static void test_ext_l2(void)
{
  char p[512];
  path_of(p, "ext.qcow2");
  struct mk m;
  uint64_t cs = 16384, sc = 512;
  mk_begin(&m, p, 14, true, 16 * cs, 0);
  uint8_t *buf = malloc(cs);
  fill(buf, 0, cs);
  mk_entry(&m, 0);
  uint64_t host = m.next;
  pw(&m, buf, cs, host);
  m.next += cs;
  /* Subclusters 0-3 allocated, 4-7 zero, the rest unallocated. */
  mk_set(&m, 0, host | (1ull << 63), 0x0full | (0xf0ull << 32));
  /* A cluster without host offset whose subclusters all read as zero. */
  mk_set(&m, cs, 0, 0xffffffffull << 32);
  mk_end(&m);
  struct qcow2_image *img = open_img(p, 0);
  uint8_t *got = malloc(2 * cs);
  CHECK_OK(qcow2_pread(img, got, 2 * cs, 0));
  CHECK(memcmp(got, buf, 4 * sc) == 0);
  for (uint64_t i = 4 * sc; i < 2 * cs; i++)
    CHECK_EQ(got[i], 0);
  uint64_t len;
  CHECK_EQ(status_at(img, 100, cs, &len),
           QCOW2_BS_DATA | QCOW2_BS_PRESENT | QCOW2_BS_OFFSET_VALID);
  CHECK_EQ(len, 4 * sc - 100);
  CHECK_EQ(status_at(img, 4 * sc, cs, &len),
           QCOW2_BS_ZERO | QCOW2_BS_PRESENT | QCOW2_BS_OFFSET_VALID);
  CHECK_EQ(len, 4 * sc);
  CHECK_EQ(status_at(img, 8 * sc, 2 * cs, &len),
           QCOW2_BS_ZERO | QCOW2_BS_OFFSET_VALID);
  CHECK_EQ(len, cs - 8 * sc);
  CHECK_EQ(status_at(img, cs, cs, &len), QCOW2_BS_ZERO | QCOW2_BS_PRESENT);
  CHECK_EQ(len, cs);
  CHECK(qcow2_get_info(img)->extended_l2);
  qcow2_close(img);
  free(got);
  free(buf);
  free(m.types);
}

/* A reserved bit in one L2 entry fails that cluster only, with EIO. */
static void test_corrupt_entry(void)
{
  char p[512];
  path_of(p, "bad.qcow2");
  struct mk m;
  mk_begin(&m, p, 12, false, 1 << 20, 0);
  mk_data(&m, 0);
  mk_data(&m, 8192);
  uint8_t e[8];
  CHECK(pread(m.fd, e, 8, (off_t)mk_entry(&m, 8192)) == 8);
  mk_set(&m, 8192, load_be64(e) | (1ull << 60), 0);
  mk_end(&m);
  struct qcow2_image *img = open_img(p, 0);
  uint8_t buf[4096];
  CHECK_OK(qcow2_pread(img, buf, sizeof buf, 0));
  CHECK_ERR(qcow2_pread(img, buf, sizeof buf, 8192), EIO);
  CHECK_ERR(qcow2_pread(img, buf, sizeof buf, 8000), EIO);
  struct qcow2_status st;
  CHECK_OK(qcow2_block_status(img, 0, 1 << 20, &st)); /* the good part */
  CHECK_ERR(qcow2_block_status(img, 8192, 4096, &st), EIO);
  qcow2_close(img);
  free(m.types);
}

/* Header fields that must refuse the open. */
static void test_refuse(void)
{
  char p[512];
  path_of(p, "refuse.qcow2");
  static const struct {
    unsigned off, len;
    uint64_t val;
    int err;
  } cases[] = {
      {4, 4, 4, ENOTSUP},          /* version 4 */
      {20, 4, 30, EINVAL},         /* cluster_bits */
      {32, 4, 2, ENOTSUP},         /* LUKS */
      {72, 8, 1ull << 9, ENOTSUP}, /* unknown incompatible bit */
      {96, 4, 7, EINVAL},          /* refcount_order */
      {100, 4, 96, EINVAL},        /* header_length */
      {36, 4, 0, EINVAL},          /* L1 too small */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct mk m;
    mk_begin(&m, p, 12, false, 1 << 20, 0);
    mk_data(&m, 0);
    mk_end(&m);
    int fd = open(p, O_RDWR);
    uint8_t b[8];
    if (cases[i].len == 8)
      store_be64(b, cases[i].val);
    else
      store_be32(b, (uint32_t)cases[i].val);
    CHECK(pwrite(fd, b, cases[i].len, cases[i].off) == (ssize_t)cases[i].len);
    close(fd);
    struct qcow2_open_opts o = {.readonly = true};
    struct qcow2_image *img = NULL;
    CHECK_ERR(qcow2_open(p, &o, &img), cases[i].err);
    CHECK(img == NULL);
    free(m.types);
  }
}

struct reader {
  struct qcow2_image *img;
  const struct mk *m;
  unsigned seed;
};

static void *reader_main(void *arg)
{
  struct reader *r = arg;
  uint8_t *got = malloc(65536), *want = malloc(65536);
  for (int i = 0; i < 600; i++) {
    uint64_t n = 1 + rand_r(&r->seed) % 65536;
    uint64_t off = ((uint64_t)rand_r(&r->seed) << 12 ^ rand_r(&r->seed)) %
                   (r->m->size - n);
    CHECK_OK(qcow2_pread(r->img, got, n, off));
    expect(r->m, want, off, n);
    CHECK(memcmp(got, want, n) == 0);
  }
  free(got);
  free(want);
  return NULL;
}

/* Eight threads reading through a cache of 64 slices while the image
 * has 80 L2 tables: constant eviction under contention. */
static void test_threads(void)
{
  char p[512];
  path_of(p, "threads.qcow2");
  struct mk m;
  uint64_t cs = 4096, span = 2u << 20;
  mk_begin(&m, p, 12, false, 80 * span, 0);
  for (uint64_t t = 0; t < 80; t++) {
    mk_data(&m, t * span + 3 * cs);
    mk_data(&m, t * span + 4 * cs);
    mk_zero(&m, t * span + 5 * cs);
    mk_compressed(&m, t * span + 6 * cs, false);
    mk_data(&m, t * span + span - cs);
  }
  mk_end(&m);
  struct qcow2_image *img = open_img(p, 1);
  pthread_t th[8];
  struct reader r[8];
  for (int i = 0; i < 8; i++) {
    r[i] = (struct reader){img, &m, (unsigned)i * 7919u + 1};
    CHECK(pthread_create(&th[i], NULL, reader_main, &r[i]) == 0);
  }
  for (int i = 0; i < 8; i++)
    pthread_join(th[i], NULL);
  qcow2_close(img);
  free(m.types);
}

static void cleanup(void)
{
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", tmpdir);
}

static void test_types_all(void)
{
  for (unsigned cb = 9; cb <= 21; cb += 3) {
    test_types(cb, 0);
    test_types(cb, 1);
  }
}

int main(void)
{
  CHECK(mkdtemp(tmpdir) != NULL);
  atexit(cleanup);
  log_set_level(LOG_LVL_ERROR);
  RUN(test_types_all);
  RUN(test_ext_l2);
  RUN(test_corrupt_entry);
  RUN(test_refuse);
  RUN(test_threads);
  return 0;
}
