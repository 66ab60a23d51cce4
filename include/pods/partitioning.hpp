// pods/partitioning.hpp — every header of the partitioning family: fixed partitions and key
// ranges.
#pragma once

#include <pods/partitioning/fixed_partitions.hpp>
#include <pods/partitioning/key_range_partitions.hpp>
