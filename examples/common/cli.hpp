// Command-line numbers for the example programs: a flag's value must be a whole number from 1
// to a maximum, or the program exits with status 2 and a message naming the flag.
#pragma once

#include <cstdlib>
#include <iostream>
#include <string>

namespace pods_examples {

// Returns `text` as a number in [1, max]; otherwise prints "<program>: <flag>: a number from
// 1 to <max>, got <text>" and exits with status 2.
inline unsigned long long number(const char* program, const std::string& flag, const char* text,
                                 unsigned long long max) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (end == text || *end != '\0' || v == 0 || v > max) {
    std::cerr << program << ": " << flag << ": a number from 1 to " << max << ", got " << text
              << "\n";
    std::exit(2);
  }
  return v;
}

}  // namespace pods_examples
