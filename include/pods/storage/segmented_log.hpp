// pods/storage/segmented_log.hpp — Segmented Log with its default storage, FileStorage
//
// The log is in <pods/storage/segmented_log_core.hpp> (its teaching comment, format and
// rules are there); this header adds <pods/storage/file_storage.hpp> so that
// SegmentedLog<> and `pods::SegmentedLog log(pods::FileStorage(dir))` compile with this one
// include. A program that uses only MemoryStorage (or its own storage) includes the core
// header instead and does not compile <filesystem> and the POSIX file code.
//
// Example:
//   #include <pods/storage/segmented_log.hpp>
//   pods::SegmentedLog<> log(pods::FileStorage("/var/lib/app/log"));
//   log.append(bytes); log.sync();
// Example context: std::vector<std::byte> bytes(8);
#pragma once

#include <pods/storage/file_storage.hpp>
#include <pods/storage/segmented_log_core.hpp>
