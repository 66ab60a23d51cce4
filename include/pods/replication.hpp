// pods/replication.hpp — every header of the replication family: the replicated log, the
// high-water mark, the read paths, Paxos and two-phase commit.
#pragma once

#include <pods/replication/consistent_core.hpp>
#include <pods/replication/follower_reads.hpp>
#include <pods/replication/high_water_mark.hpp>
#include <pods/replication/paxos.hpp>
#include <pods/replication/paxos_log.hpp>
#include <pods/replication/replicated_log.hpp>
#include <pods/replication/two_phase_commit.hpp>
