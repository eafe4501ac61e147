// Level of detail: what to draw of one lane for a view [start, end) that is
// `width` pixels wide, at any zoom, in work that grows with the pixels and
// the pieces visible at that zoom, never with the trace.
//
// The view is cut into `width` pixels, pixel j covering
// [start + floor(length * j / width), start + floor(length * (j + 1) / width)).
// For each pixel the lane's pieces give, exactly:
// - busy: the time inside the pixel some piece covers;
// - spans: the spans that start inside it;
// - dominant: the label with the most time inside it (ties to the lower
//   SpanLabel code); in a pixel with no time covered, the label of the first
//   span starting in it;
// - event: the event of the only piece touching it, if just one does.
// A pixel nothing touches is not drawn. Consecutive pixels that are both
// wholly busy with the same dominant label and event are one item: a long
// span comes back as one item, however far in the view is zoomed. So a
// query returns at most `width` items.
//
// The sums it reads (LaneTimeline: time and spans before each piece, time by
// label before each block of pieces) are built once, at load; a pixel costs
// a galloping search for its pieces and, when it holds many, one read of
// the block sums per label plus at most two partial blocks.
#pragma once

#include <cstdint>
#include <vector>

#include "vmlab/viz/timeline.hpp"

namespace vmlab::viz {

struct LodItem {
  std::uint64_t start_ns = 0;  // where its first pixel starts
  std::uint64_t end_ns = 0;    // where its last pixel ends
  std::uint64_t busy_ns = 0;
  std::uint32_t spans = 0;
  SpanLabel dominant;
  EventIndex event = kNoEvent;

  bool wholly_busy() const { return busy_ns == end_ns - start_ns; }
  friend bool operator==(const LodItem&, const LodItem&) = default;
};

// The items of `lane` for `view` at `width` pixels, into `items` (cleared
// first, so a view redrawing every frame reuses one vector). A view
// narrower than `width` nanoseconds has pixels of no length, which hold
// nothing.
void query_lod(const LaneTimeline& lane, TimeRange view, std::uint32_t width,
               std::vector<LodItem>& items);

}  // namespace vmlab::viz
