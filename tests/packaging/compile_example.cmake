# Compiles the documented example of one header, so an example that no longer compiles fails
# a test instead of misleading a reader. Run with -DHEADER=<path of the header>
# -DSETTINGS=<example_settings.cmake written at configure time> -DOUT=<scratch dir>.
#
# What is compiled. The example is the `// Example:` block of the header's opening comment:
# every comment line after `// Example:` up to the end of that comment, with the leading
# `//` removed. It becomes the body of a function in a generated translation unit that
# includes the header itself, a few standard headers examples use without saying so
# (<cassert> <chrono> <cstdint> <cstdio> <future> <iostream> <span> <string> <string_view>
# <utility> <vector>) and `using namespace std::chrono_literals;`, inside a namespace of its
# own. An example line that is an `#include` goes to the top of the file instead.
#
# Context markers. An example shows the pattern's calls and leaves out the program around
# them (the message that arrived, the store being written). A header whose example needs
# such names declares them with marker lines, anywhere in the header (by convention right
# after the example block, still inside the opening comment, so a reader sees them too):
#   // Example context: <one line of C++>
#       placed at namespace scope before the example, in order: declarations of the names
#       the example assumes (`struct Reply {};`, `Reply reply;`, a function it calls) and
#       `#include` lines for other pods headers it uses;
#   // Example scope: namespace
#       the example itself is compiled at namespace scope rather than inside a function (for
#       an example that defines a class or a template).
# Warnings are the project's (-Wall -Wextra -Wpedantic -Werror) minus -Wunused: an example
# may name a value it does not use.
cmake_minimum_required(VERSION 3.25)
include("${SETTINGS}")
list(REMOVE_DUPLICATES PODS_EXAMPLE_INCLUDES)
foreach(dir IN LISTS PODS_EXAMPLE_INCLUDES)
  if(NOT dir STREQUAL PODS_EXAMPLE_INCLUDE_ROOT AND NOT dir IN_LIST PODS_EXAMPLE_IMPLICIT)
    list(APPEND PODS_EXAMPLE_FLAGS -isystem "${dir}")
  endif()
endforeach()

# One list element per line. C++ is full of semicolons, CMake's list separator, and of square
# brackets, which make CMake ignore separators between them: both travel as control
# characters and are put back in each line.
string(ASCII 1 semicolon)
string(ASCII 2 open)
string(ASCII 3 close)
file(READ "${HEADER}" text)
string(REPLACE ";" "${semicolon}" text "${text}")
string(REPLACE "[" "${open}" text "${text}")
string(REPLACE "]" "${close}" text "${text}")
string(REPLACE "\n" ";" lines "${text}")
set(example "")
set(includes "")
set(context "")
set(scope function)
set(state before)  # before | inside | after: the example block of the opening comment
set(found OFF)
# Appends a line of code to `includes` when it is an #include, to the variable named `into`
# otherwise.
function(keep code into)
  if(code MATCHES "^[ \t]*#[ \t]*include")
    set(includes "${includes}${code}\n" PARENT_SCOPE)
  else()
    set(${into} "${${into}}${code}\n" PARENT_SCOPE)
  endif()
endfunction()
foreach(line IN LISTS lines)
  string(REPLACE "${semicolon}" ";" line "${line}")
  string(REPLACE "${open}" "[" line "${line}")
  string(REPLACE "${close}" "]" line "${line}")
  if(line MATCHES "^// Example (context|scope): *(.*)$")
    set(marker "${CMAKE_MATCH_1}")
    set(value "${CMAKE_MATCH_2}")
    if(marker STREQUAL "context")
      keep("${value}" context)
    elseif(value MATCHES "^(namespace|function)$")
      set(scope "${value}")
    else()
      message(FATAL_ERROR "${HEADER}: 'Example scope:' takes 'namespace' or 'function', got '${value}'")
    endif()
    if(state STREQUAL "inside")  # a marker ends the example block
      set(state after)
    endif()
  elseif(state STREQUAL "before" AND line MATCHES "^// Example:(.*)$")
    set(found ON)
    set(state inside)
    string(STRIP "${CMAKE_MATCH_1}" rest)
    if(NOT rest STREQUAL "")
      keep("${rest}" example)
    endif()
  elseif(state STREQUAL "inside")
    if(line MATCHES "^//(.*)$")
      keep("${CMAKE_MATCH_1}" example)
    else()
      set(state after)
    endif()
  endif()
endforeach()

if(NOT found)
  message(FATAL_ERROR "${HEADER} has no '// Example:' block in its opening comment")
endif()

file(RELATIVE_PATH rel "${PODS_EXAMPLE_INCLUDE_ROOT}" "${HEADER}")
string(MAKE_C_IDENTIFIER "${rel}" id)
set(tu "// Generated from the Example block of <${rel}> by tests/packaging/compile_example.cmake.\n")
string(APPEND tu "#include <${rel}>\n\n")
foreach(std IN ITEMS cassert chrono cstdint cstdio future iostream span string string_view utility vector)
  string(APPEND tu "#include <${std}>\n")
endforeach()
string(APPEND tu "${includes}\nnamespace pods_example {\nusing namespace std::chrono_literals;\n\n")
string(APPEND tu "// Example context:\n${context}\n")
if(scope STREQUAL "namespace")
  string(APPEND tu "// Example:\n${example}")
else()
  string(APPEND tu "void example_${id}() {\n${example}}\n")
endif()
string(APPEND tu "}  // namespace pods_example\n")

file(MAKE_DIRECTORY "${OUT}")
set(source "${OUT}/${id}.cpp")
file(WRITE "${source}" "${tu}")
execute_process(
  COMMAND ${PODS_EXAMPLE_COMPILER} ${PODS_EXAMPLE_FLAGS} -c "${source}" -o "${OUT}/${id}.o"
  RESULT_VARIABLE result
  OUTPUT_VARIABLE output
  ERROR_VARIABLE output)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "the example of <${rel}> does not compile (generated ${source}):\n${output}")
endif()
message(STATUS "the example of <${rel}> compiles")
