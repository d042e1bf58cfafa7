/* Checked arithmetic and small integer helpers used wherever sizes come
 * from untrusted input (the wire, image headers). */
#ifndef QNBD_UTIL_CHECKED_H
#define QNBD_UTIL_CHECKED_H

#include <stdbool.h>
#include <stdint.h>

#define ckd_add(r, a, b) __builtin_add_overflow((a), (b), (r))
#define ckd_mul(r, a, b) __builtin_mul_overflow((a), (b), (r))
#define ckd_sub(r, a, b) __builtin_sub_overflow((a), (b), (r))

#ifndef MIN /* sys/param.h has the same */
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif
#ifndef MAX
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#endif
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static inline bool is_power_of_2(uint64_t v)
{
  return v && !(v & (v - 1));
}

/* Round v up/down to a multiple of align (a power of two). */
#define ROUND_UP(v, align)   (((v) + (align)-1) & ~((__typeof__(v))(align)-1))
#define ROUND_DOWN(v, align) ((v) & ~((__typeof__(v))(align)-1))
#define IS_ALIGNED(v, align) (((v) & ((align)-1)) == 0)

/* True when [off, off+len) lies within [0, size). */
static inline bool range_within(uint64_t off, uint64_t len, uint64_t size)
{
  uint64_t end;
  return !ckd_add(&end, off, len) && end <= size;
}

#endif
