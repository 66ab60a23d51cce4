// pods/policy.hpp — every header of the policy family, for users who want them all.
#pragma once

#include <pods/policy/assert.hpp>
#include <pods/policy/clock.hpp>
#include <pods/policy/codec.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/random.hpp>
#include <pods/policy/storage.hpp>
#include <pods/policy/threading.hpp>
#include <pods/policy/transport.hpp>
#include <pods/policy/wire.hpp>
