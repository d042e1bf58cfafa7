# Helpers that register tests: one ctest test per file, labelled by folder.
#
# Every test runs with QNBD (the server), QNBD_IMG, QNBD_BUILD and
# QNBD_SRC in its environment and a private temporary directory
# (tests/lib.sh makes it), so `ctest -j` is safe.  Exit 77 means skip.

function(qnbd_test_env name)
  set_tests_properties(${name} PROPERTIES
    SKIP_RETURN_CODE 77
    ENVIRONMENT "QNBD=$<TARGET_FILE:qnbd>;QNBD_BUILD=${CMAKE_BINARY_DIR};QNBD_SRC=${CMAKE_SOURCE_DIR};QNBD_TESTS=${CMAKE_SOURCE_DIR}/tests;PATH=/usr/bin:$ENV{PATH}")
endfunction()

# qnbd_script_tests(LABEL dir): every *.sh and *.py in dir is a test.
function(qnbd_script_tests label dir)
  file(GLOB scripts CONFIGURE_DEPENDS ${dir}/*.sh ${dir}/*.py)
  foreach(s IN LISTS scripts)
    get_filename_component(base ${s} NAME_WE)
    get_filename_component(ext ${s} EXT)
    set(name "${label}/${base}")
    if(ext STREQUAL ".py")
      add_test(NAME ${name} COMMAND /usr/bin/python3 ${s})
    else()
      add_test(NAME ${name} COMMAND bash ${s})
    endif()
    qnbd_test_env(${name})
    set_property(TEST ${name} APPEND PROPERTY LABELS ${label})
    set_property(TEST ${name} PROPERTY TIMEOUT 600)
  endforeach()
endfunction()

# qnbd_unit_test(name sources... LIBS libs...)
function(qnbd_unit_test name)
  cmake_parse_arguments(U "" "" "LIBS" ${ARGN})
  add_executable(test-${name} ${U_UNPARSED_ARGUMENTS})
  target_link_libraries(test-${name} PRIVATE ${U_LIBS})
  add_test(NAME unit/${name} COMMAND test-${name})
  qnbd_test_env(unit/${name})
  set_property(TEST unit/${name} APPEND PROPERTY LABELS unit)
endfunction()
