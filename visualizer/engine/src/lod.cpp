#include "vmlab/viz/lod.hpp"

#include <algorithm>

namespace vmlab::viz {

namespace {

// The view's pixel boundaries, exact in integers: length * pixel needs more
// than 64 bits for a long view at a wide width.
class PixelGrid {
 public:
  PixelGrid(TimeRange view, std::uint32_t width)
      : m_start(view.start_ns), m_length(view.length()), m_width(width) {}

  std::uint32_t width() const { return m_width; }
  std::uint64_t boundary(std::uint64_t pixel) const {
    return m_start +
           static_cast<std::uint64_t>(static_cast<unsigned __int128>(m_length) * pixel / m_width);
  }
  // The pixel (of some length) holding `time_ns`, which lies in the view:
  // the last pixel whose start is at or before it.
  std::uint32_t pixel_at(std::uint64_t time_ns) const {
    const auto offset = static_cast<unsigned __int128>(time_ns - m_start);
    return static_cast<std::uint32_t>(((offset + 1) * m_width - 1) / m_length);
  }

 private:
  std::uint64_t m_start;
  std::uint64_t m_length;
  std::uint32_t m_width;
};

class LodQuery {
 public:
  LodQuery(const LaneTimeline& lane, std::vector<LodItem>& items)
      : m_lane(lane), m_items(items), m_label_busy(lane.labels().size(), 0) {}

  void run(TimeRange view, std::uint32_t width) {
    const PixelGrid grid(view, width);
    std::size_t hint = 0;
    std::uint32_t pixel = 0;
    while (pixel < width) {
      const std::uint64_t start = grid.boundary(pixel);
      const std::uint64_t end = grid.boundary(pixel + 1);
      if (end == start) {
        ++pixel;
        continue;
      }
      const std::size_t first = m_lane.first_not_before(start, hint);
      const std::size_t last = m_lane.first_starting_at_or_after(end, first);
      hint = first;
      if (first == last) {
        // Nothing here: on to the pixel of the next piece.
        if (first == m_lane.size() || m_lane.start_ns(first) >= view.end_ns) return;
        pixel = grid.pixel_at(m_lane.start_ns(first));
        continue;
      }
      add(pixel_item(start, end, first, last));
      const bool covered =
          last - first == 1 && m_lane.start_ns(first) <= start && m_lane.end_ns(first) >= end;
      if (!covered) {
        ++pixel;
        continue;
      }
      // One piece covers this pixel; it alone covers every pixel up to the
      // one its end falls in, which are one item.
      const std::uint64_t piece_end = m_lane.end_ns(first);
      const std::uint32_t resume = piece_end < view.end_ns ? grid.pixel_at(piece_end) : width;
      const std::uint64_t run_end = grid.boundary(resume);
      if (resume > pixel + 1 && run_end > end) {
        add({.start_ns = end,
             .end_ns = run_end,
             .busy_ns = run_end - end,
             .spans = 0,
             .dominant = m_lane.label(first),
             .event = m_lane.event(first)});
      }
      pixel = std::max(resume, pixel + 1);
    }
  }

 private:
  void add(const LodItem& item) {
    if (!m_items.empty()) {
      LodItem& previous = m_items.back();
      if (previous.end_ns == item.start_ns && previous.wholly_busy() && item.wholly_busy() &&
          previous.dominant == item.dominant && previous.event == item.event) {
        previous.end_ns = item.end_ns;
        previous.busy_ns += item.busy_ns;
        previous.spans += item.spans;
        return;
      }
    }
    m_items.push_back(item);
  }

  // Pixel [start, end), which pieces [first, last) touch.
  LodItem pixel_item(std::uint64_t start, std::uint64_t end, std::size_t first, std::size_t last) {
    const std::uint64_t left_cut =
        m_lane.start_ns(first) < start ? start - m_lane.start_ns(first) : 0;
    const std::uint64_t right_cut =
        m_lane.end_ns(last - 1) > end ? m_lane.end_ns(last - 1) - end : 0;
    LodItem item{
        .start_ns = start,
        .end_ns = end,
        .busy_ns = m_lane.busy_before(last) - m_lane.busy_before(first) - left_cut - right_cut,
        .spans = m_lane.spans_before(last) - m_lane.spans_before(first) -
                 (left_cut != 0 && m_lane.first(first) ? 1u : 0u),
        .dominant = m_lane.label(first),
        .event = last - first == 1 ? m_lane.event(first) : kNoEvent};
    // With no time covered, every piece here is a span of no length starting
    // here, and the first one names the pixel.
    if (m_lane.labels().size() > 1 && item.busy_ns != 0) {
      item.dominant = dominant(first, last, left_cut, right_cut);
    }
    return item;
  }

  void add_pieces(std::size_t first, std::size_t last) {
    for (std::size_t index = first; index < last; ++index)
      m_label_busy[m_lane.local_label(index)] += m_lane.end_ns(index) - m_lane.start_ns(index);
  }

  SpanLabel dominant(std::size_t first, std::size_t last, std::uint64_t left_cut,
                     std::uint64_t right_cut) {
    std::fill(m_label_busy.begin(), m_label_busy.end(), 0);
    constexpr std::size_t kBlock = LaneTimeline::kBlock;
    const std::size_t first_block = (first + kBlock - 1) / kBlock;
    const std::size_t last_block = last / kBlock;
    if (last - first <= 2 * kBlock || first_block >= last_block) {
      add_pieces(first, last);
    } else {
      add_pieces(first, first_block * kBlock);
      for (std::size_t label = 0; label < m_label_busy.size(); ++label) {
        const auto local = static_cast<std::uint16_t>(label);
        m_label_busy[label] += m_lane.label_busy_before_block(last_block, local) -
                               m_lane.label_busy_before_block(first_block, local);
      }
      add_pieces(last_block * kBlock, last);
    }
    m_label_busy[m_lane.local_label(first)] -= left_cut;
    m_label_busy[m_lane.local_label(last - 1)] -= right_cut;
    std::size_t best = 0;
    for (std::size_t label = 1; label < m_label_busy.size(); ++label) {
      const bool more = m_label_busy[label] > m_label_busy[best];
      const bool tie_lower = m_label_busy[label] == m_label_busy[best] &&
                             m_lane.labels()[label].code() < m_lane.labels()[best].code();
      if (more || tie_lower) best = label;
    }
    return m_lane.labels()[best];
  }

  const LaneTimeline& m_lane;
  std::vector<LodItem>& m_items;
  std::vector<std::uint64_t> m_label_busy;  // by local label, for one pixel
};

}  // namespace

void query_lod(const LaneTimeline& lane, TimeRange view, std::uint32_t width,
               std::vector<LodItem>& items) {
  items.clear();
  if (width == 0 || view.empty() || lane.empty()) return;
  LodQuery(lane, items).run(view, width);
}

}  // namespace vmlab::viz
