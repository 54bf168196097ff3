#include "pagewire/migration/tracker_group.hpp"

#include <algorithm>

namespace pagewire::migration {

Status TrackerGroup::start() {
  for (std::size_t t = 0; t < trackers_.size(); ++t) {
    if (Status started = trackers_[t]->start(); !started) {
      while (t-- > 0) trackers_[t]->stop();
      return started;
    }
  }
  return Ok{};
}

Status TrackerGroup::collect(DirtyPages& pages) {
  for (const auto& tracker : trackers_) {
    if (Status collected = tracker->collect(pages); !collected) return collected;
  }
  return Ok{};
}

void TrackerGroup::stop() {
  for (const auto& tracker : trackers_) tracker->stop();
}

bool TrackerGroup::protects_pages_in_flight() const {
  return !trackers_.empty() &&
         std::all_of(trackers_.begin(), trackers_.end(), [](const auto& t) { return t->protects_pages_in_flight(); });
}

}  // namespace pagewire::migration
