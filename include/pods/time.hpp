// pods/time.hpp — every header of the time family, for users who want them all.
#pragma once

#include <pods/time/clock_bound_wait.hpp>
#include <pods/time/generation_clock.hpp>
#include <pods/time/hybrid_clock.hpp>
#include <pods/time/lamport_clock.hpp>
#include <pods/time/tsc_clock.hpp>
#include <pods/time/version_vector.hpp>
