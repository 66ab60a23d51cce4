// pods/net.hpp — every header of the net family. It needs standalone Asio and libsodium:
// link pods::net and pods::crypto. frame.hpp, reliable_link.hpp and rpc.hpp need neither and
// may be included alone with pods::pods.
#pragma once

#include <pods/net/authenticated_link.hpp>
#include <pods/net/frame.hpp>
#include <pods/net/reliable_link.hpp>
#include <pods/net/rpc.hpp>
#include <pods/net/tcp_transport.hpp>
