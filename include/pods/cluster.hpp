// pods/cluster.hpp — every header of the cluster family: failure detection, quorums,
// membership, leaders and leases.
#pragma once

#include <pods/cluster/bully_election.hpp>
#include <pods/cluster/election_state.hpp>
#include <pods/cluster/emergent_leader.hpp>
#include <pods/cluster/gossip_dissemination.hpp>
#include <pods/cluster/heartbeat.hpp>
#include <pods/cluster/lease.hpp>
#include <pods/cluster/majority_quorum.hpp>
#include <pods/cluster/ring_election.hpp>
