/* qnbd-img's private declarations: the subcommands and output helpers. */
#ifndef QNBD_TOOLS_IMG_H
#define QNBD_TOOLS_IMG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "qcow2/qcow2.h"

struct img_args {
  const char *file;
  const char *format; /* NULL: probe */
  const char *snapshot;
  bool json;
  bool backing_chain;
};

int img_info(const struct img_args *a);
int img_map(const struct img_args *a);

/* Open an image for reading: qcow2, or a raw file (a chain of one
 * layer).  Says why on failure. */
int img_open(const struct img_args *a, struct qcow2_image **img);

/* Write s as a JSON string (quotes and escapes included). */
void json_str(FILE *f, const char *s);
/* QEMU's size_to_str: "356 KiB", "1.5 GiB". */
void human_size(char *buf, size_t len, uint64_t v);

#endif
