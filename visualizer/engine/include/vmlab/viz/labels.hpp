// How levels and lengths read for people: the words of every view, graph
// and image, Qt's or Graphviz's. The Qt models (models/text.hpp) pass these
// on, so a lane and the node that stands for it are titled alike.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "vmlab/trace.hpp"

namespace vmlab::viz {

// "VMM", "Monitor", "Guest kernel", "Guest user", "Guest (level unknown)", "Halted".
std::string_view level_title(TimelineLane lane);
// A length with the unit that reads best, three significant digits:
// "850 ns", "12.3 µs", "4.56 ms", "1.23 s".
std::string duration_words(std::uint64_t nanoseconds);

}  // namespace vmlab::viz
