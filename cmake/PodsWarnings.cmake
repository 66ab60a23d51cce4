# Warning flags for pods' own targets (tests, benchmarks, examples). They are never put on
# the INTERFACE target: a consumer's flags are the consumer's business.
function(pods_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Werror)
endfunction()
