# pods_cli_test(NAME name PROGRAM target EXPECT_RC n EXPECT regex [ARGS a...] [WORK_DIR d]
#               [KEEP_FILE f] [ABSENT p] [PRESENT p]): a ctest case that runs an example program
# once and checks its exit status and output (see cli_test.cmake for the checks).
set(PODS_CLI_TEST_SCRIPT "${CMAKE_CURRENT_LIST_DIR}/cli_test.cmake")
function(pods_cli_test)
  cmake_parse_arguments(T "" "NAME;PROGRAM;EXPECT_RC;EXPECT;WORK_DIR;KEEP_FILE;ABSENT;PRESENT" "ARGS" ${ARGN})
  string(JOIN "|" args ${T_ARGS})
  set(defines -DPROGRAM=$<TARGET_FILE:${T_PROGRAM}> -DARGS=${args} -DEXPECT_RC=${T_EXPECT_RC}
              -DEXPECT=${T_EXPECT})
  foreach(opt WORK_DIR KEEP_FILE ABSENT PRESENT)
    if(DEFINED T_${opt})
      list(APPEND defines -D${opt}=${T_${opt}})
    endif()
  endforeach()
  add_test(NAME "${T_NAME}" COMMAND ${CMAKE_COMMAND} ${defines} -P "${PODS_CLI_TEST_SCRIPT}")
  set_tests_properties("${T_NAME}" PROPERTIES LABELS examples)
endfunction()
