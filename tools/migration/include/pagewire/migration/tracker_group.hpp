// Several dirty trackers as one: a guest's RAM blocks tracked each by its own (a KVM memory
// slot each, or a WriteTracker per block), every tracker marking its pages at their place
// in the migration's numbering.
//
// Threading: the DirtyTracker contract (the migration's control thread).
#pragma once

#include <memory>
#include <vector>

#include "pagewire/migration/hooks.hpp"

namespace pagewire::migration {

class TrackerGroup final : public DirtyTracker {
 public:
  void add(std::unique_ptr<DirtyTracker> tracker) { trackers_.push_back(std::move(tracker)); }
  std::size_t size() const { return trackers_.size(); }

  // All or none: a tracker that fails to start stops the ones started before it.
  Status start() override;
  // Every tracker's pages; the first failure ends the look (the migration then stops).
  Status collect(DirtyPages& pages) override;
  void stop() override;
  // Only when every tracker protects its pages.
  bool protects_pages_in_flight() const override;

 private:
  std::vector<std::unique_ptr<DirtyTracker>> trackers_;
};

}  // namespace pagewire::migration
