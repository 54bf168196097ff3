// The embedding API in one include: a Link onto the network, a Source or a Destination over
// it, the hooks a hypervisor implements, the library's dirty trackers, typed errors.
// docs/embedding.md walks through it; docs/examples/ has a C++ and a C program.
#pragma once

#include "pagewire/migration/destination.hpp"
#include "pagewire/migration/dirty_log.hpp"
#include "pagewire/migration/dirty_pages.hpp"
#include "pagewire/migration/hooks.hpp"
#include "pagewire/migration/link.hpp"
#include "pagewire/migration/ram_block.hpp"
#include "pagewire/migration/report.hpp"
#include "pagewire/migration/source.hpp"
#include "pagewire/migration/tracker_group.hpp"
#include "pagewire/migration/write_tracker.hpp"
#include "pagewire/result.hpp"
#include "pagewire/version.h"
