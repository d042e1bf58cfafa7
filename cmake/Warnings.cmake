# Compiler warnings applied to every qnbd target (errors with QNBD_WERROR).
add_compile_options(
  -Wall -Wextra -Wshadow -Wvla -Wmissing-prototypes -Wstrict-prototypes
  -Wformat=2 -Wpointer-arith -Wcast-align -Wwrite-strings -Wundef
  -Wno-unused-parameter -Wno-format-nonliteral -fno-common)
if(QNBD_WERROR)
  add_compile_options(-Werror)
endif()
