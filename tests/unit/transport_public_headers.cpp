// The transport's public headers stand alone: this file includes every one of them and is
// built with include/ only on its path (tests/meson.build), so a public header that reaches
// into internal/ breaks the build.
#include "pagewire/transport/applied_pages.hpp"
#include "pagewire/transport/commit_outcome.hpp"
#include "pagewire/transport/eal.hpp"
#include "pagewire/transport/frame_drop.hpp"
#include "pagewire/transport/outcome_query.hpp"
#include "pagewire/transport/path.hpp"
#include "pagewire/transport/port.hpp"
#include "pagewire/transport/pre_shared_key.hpp"
#include "pagewire/transport/published_counters.hpp"
#include "pagewire/transport/queue_ref.hpp"
#include "pagewire/transport/session.hpp"
#include "pagewire/transport/stop_reason.hpp"
#include "pagewire/transport/stream_counters.hpp"
#include "pagewire/transport/stream_runner.hpp"
#include "pagewire/transport/stream_tuning.hpp"
#include "pagewire/transport/telemetry.hpp"
