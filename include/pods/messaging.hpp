// pods/messaging.hpp — every header of the messaging family, for users who want them all.
#pragma once

#include <pods/messaging/idempotent_receiver.hpp>
#include <pods/messaging/move_only_function.hpp>
#include <pods/messaging/mpsc_queue.hpp>
#include <pods/messaging/producer_ring_queue.hpp>
#include <pods/messaging/request_batch.hpp>
#include <pods/messaging/request_pipeline.hpp>
#include <pods/messaging/request_waiting_list.hpp>
#include <pods/messaging/singular_update_queue.hpp>
#include <pods/messaging/state_watch.hpp>
