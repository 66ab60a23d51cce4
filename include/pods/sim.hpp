// pods/sim.hpp — every header of the sim family, for users who want them all.
#pragma once

#include <pods/sim/cluster.hpp>
#include <pods/sim/history.hpp>
#include <pods/sim/history_html.hpp>
#include <pods/sim/linearizability.hpp>
#include <pods/sim/nemesis.hpp>
#include <pods/sim/network.hpp>
#include <pods/sim/node_clock.hpp>
#include <pods/sim/simulation.hpp>
