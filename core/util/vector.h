/* A typed growable array: DEFINE_VECTOR(name, T) declares struct name
 * with ptr/len/cap and static inline name_append / name_reserve /
 * name_reset functions.  Functions return 0 or -ENOMEM. */
#ifndef QNBD_UTIL_VECTOR_H
#define QNBD_UTIL_VECTOR_H

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#define DEFINE_VECTOR(name, T)                                                 \
  struct name {                                                                \
    T *ptr;                                                                    \
    size_t len, cap;                                                           \
  };                                                                           \
  static inline                                                                \
      __attribute__((unused)) int name##_reserve(struct name *v, size_t n)     \
  {                                                                            \
    if (v->cap - v->len >= n)                                                  \
      return 0;                                                                \
    size_t ncap = v->cap ? v->cap * 2 : 8;                                     \
    while (ncap - v->len < n)                                                  \
      ncap *= 2;                                                               \
    T *p = realloc(v->ptr, ncap * sizeof(T));                                  \
    if (!p)                                                                    \
      return -ENOMEM;                                                          \
    v->ptr = p;                                                                \
    v->cap = ncap;                                                             \
    return 0;                                                                  \
  }                                                                            \
  static inline                                                                \
      __attribute__((unused)) int name##_append(struct name *v, T elem)        \
  {                                                                            \
    if (name##_reserve(v, 1) < 0)                                              \
      return -ENOMEM;                                                          \
    v->ptr[v->len++] = elem;                                                   \
    return 0;                                                                  \
  }                                                                            \
  static inline __attribute__((unused)) void name##_reset(struct name *v)      \
  {                                                                            \
    free(v->ptr);                                                              \
    v->ptr = NULL;                                                             \
    v->len = v->cap = 0;                                                       \
  }

#endif
