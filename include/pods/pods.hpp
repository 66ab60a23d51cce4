// pods/pods.hpp — every pods header. Prefer the one header you use: each stands alone, and
// this one costs the compile time of all of them.
#pragma once

#include <pods/cluster.hpp>
#include <pods/messaging.hpp>
#include <pods/partitioning.hpp>
#include <pods/policy.hpp>
#include <pods/replication.hpp>
#include <pods/sim.hpp>
#include <pods/storage.hpp>
#include <pods/time.hpp>
