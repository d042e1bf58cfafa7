/* Private interface of the raw file backend: what its unit tests use to
 * reach the fallback paths a given file system would never take. */
#ifndef QNBD_CORE_RAW_RAW_H
#define QNBD_CORE_RAW_RAW_H

#include "backend.h"

/* Features the raw backend stops trying once the kernel or the file
 * system refuses them with EOPNOTSUPP. */
#define RAW_NO_PUNCH_HOLE (1u << 0) /* fallocate PUNCH_HOLE */
#define RAW_NO_ZERO_RANGE (1u << 1) /* fallocate ZERO_RANGE */
#define RAW_NO_ALLOCATE   (1u << 2) /* fallocate mode 0 */
#define RAW_NO_BLKZEROOUT (1u << 3) /* ioctl BLKZEROOUT */
#define RAW_NO_SEEK_DATA  (1u << 4) /* lseek SEEK_DATA / SEEK_HOLE */
#define RAW_NO_NOWAIT     (1u << 5) /* preadv2 RWF_NOWAIT */

/* Behave as if the file system had refused the features in mask, as
 * it would have on a file system without them.  b must come from
 * raw_backend_new. */
void raw_disable_features(struct backend *b, unsigned mask);

#endif
