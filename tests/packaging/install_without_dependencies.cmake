# Configures pods as a top-level project with Catch2, Google Benchmark and range-v3 hidden
# (and once with only the first two hidden), installs it, and builds and runs a consumer through find_package(pods) with range-v3 still
# hidden: installing the headers needs none of them. Run with -DSOURCE=<pods source dir>
# -DWORK=<scratch dir> -DGENERATOR=<generator> -DCXX=<compiler>.
cmake_minimum_required(VERSION 3.25)
file(REMOVE_RECURSE "${WORK}")
set(hide -DCMAKE_DISABLE_FIND_PACKAGE_Catch2=ON -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON
         -DCMAKE_DISABLE_FIND_PACKAGE_range-v3=ON)

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "${what} failed:\n${out}")
  endif()
  set(output "${out}" PARENT_SCOPE)
endfunction()

run("configuring pods without its test, benchmark and range-v3 packages"
    "${CMAKE_COMMAND}" -S "${SOURCE}" -B "${WORK}/pods" -G "${GENERATOR}"
    "-DCMAKE_CXX_COMPILER=${CXX}" ${hide})
foreach(note IN ITEMS "range-v3 not found")
  string(FIND "${output}" "${note}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "configuring pods did not say '${note}':\n${output}")
  endif()
endforeach()
# With range-v3 present, the tests and benchmarks are still skipped, each with its note, when
# their framework is missing.
run("configuring pods without its test and benchmark packages"
    "${CMAKE_COMMAND}" -S "${SOURCE}" -B "${WORK}/pods-with-range-v3" -G "${GENERATOR}"
    "-DCMAKE_CXX_COMPILER=${CXX}" -DCMAKE_DISABLE_FIND_PACKAGE_Catch2=ON
    -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON)
foreach(note IN ITEMS "Catch2 not found" "Google Benchmark not found")
  string(FIND "${output}" "${note}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "configuring pods did not say '${note}':\n${output}")
  endif()
endforeach()
run("installing pods" "${CMAKE_COMMAND}" --install "${WORK}/pods" --prefix "${WORK}/prefix")
foreach(file IN ITEMS include/pods/pods.hpp include/pods/time/hybrid_clock.hpp
                      share/cmake/pods/podsConfig.cmake share/cmake/pods/podsTargets.cmake)
  if(NOT EXISTS "${WORK}/prefix/${file}")
    message(FATAL_ERROR "the install lacks ${file}")
  endif()
endforeach()
run("configuring the consumer"
    "${CMAKE_COMMAND}" -S "${CMAKE_CURRENT_LIST_DIR}/minimal_consumer" -B "${WORK}/consumer"
    -G "${GENERATOR}" "-DCMAKE_CXX_COMPILER=${CXX}" "-DCMAKE_PREFIX_PATH=${WORK}/prefix"
    -DCMAKE_DISABLE_FIND_PACKAGE_range-v3=ON)
run("building the consumer" "${CMAKE_COMMAND}" --build "${WORK}/consumer")
run("running the consumer" "${WORK}/consumer/minimal_consumer")
message(STATUS "${output}")
