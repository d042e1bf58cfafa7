# Sanitizer builds (ASan+UBSan, TSan) selected by QNBD_SANITIZE.
if(QNBD_SANITIZE)
  add_compile_options(-fsanitize=${QNBD_SANITIZE} -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=${QNBD_SANITIZE})
endif()
