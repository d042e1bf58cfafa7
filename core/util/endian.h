/* Big-endian loads and stores for wire formats and on-disk structures. */
#ifndef QNBD_UTIL_ENDIAN_H
#define QNBD_UTIL_ENDIAN_H

#include <stdint.h>
#include <string.h>

static inline uint16_t load_be16(const void *p)
{
  uint16_t v;
  memcpy(&v, p, sizeof v);
  return __builtin_bswap16(v);
}

static inline uint32_t load_be32(const void *p)
{
  uint32_t v;
  memcpy(&v, p, sizeof v);
  return __builtin_bswap32(v);
}

static inline uint64_t load_be64(const void *p)
{
  uint64_t v;
  memcpy(&v, p, sizeof v);
  return __builtin_bswap64(v);
}

static inline void store_be16(void *p, uint16_t v)
{
  v = __builtin_bswap16(v);
  memcpy(p, &v, sizeof v);
}

static inline void store_be32(void *p, uint32_t v)
{
  v = __builtin_bswap32(v);
  memcpy(p, &v, sizeof v);
}

static inline void store_be64(void *p, uint64_t v)
{
  v = __builtin_bswap64(v);
  memcpy(p, &v, sizeof v);
}

#endif
