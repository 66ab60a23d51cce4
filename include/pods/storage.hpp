// pods/storage.hpp — every header of the storage family, for users who want them all.
#pragma once

#include <pods/storage/crc32c.hpp>
#include <pods/storage/faulty_storage.hpp>
#include <pods/storage/file_storage.hpp>
#include <pods/storage/group_commit_log.hpp>
#include <pods/storage/low_water_mark.hpp>
#include <pods/storage/memory_storage.hpp>
#include <pods/storage/segmented_log.hpp>
#include <pods/storage/segmented_log_core.hpp>
#include <pods/storage/versioned_value.hpp>
#include <pods/storage/write_ahead_log.hpp>
