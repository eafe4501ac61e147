// Published figures the report sets beside vmlab's: Adams and Agesen's
// nanobenchmarks (ASPLOS 2006), cycles per operation on native hardware,
// VMware's binary-translating VMM and their first VT-x VMM. Only what the
// paper's text states is here, as it states it: an exact figure, or one the
// text gives as a ratio (marked approximate, with the ratio), or a relation
// with no number at all.
#pragma once

#include <optional>
#include <span>
#include <string_view>

namespace vmlab::measure {

struct ReferenceFigure {
  std::optional<double> cycles;  // none: the text gives no number
  bool approximate = false;      // worked out from a ratio in the text
  std::string_view note;         // how the text gives it, when not a plain number
};

struct ReferenceRow {
  std::string_view label;  // "Native (2006)"
  std::string_view what;
  // In the order of adams_agesen_operations().
  ReferenceFigure figures[7];
};

// syscall, in, cr8wr, call/ret, pgfault, divzero, ptemod: their names, which
// are also the suite's operation names.
std::span<const std::string_view> adams_agesen_operations();
std::span<const ReferenceRow> adams_agesen_rows();
// The citation, one line of Markdown.
std::string_view adams_agesen_citation();

}  // namespace vmlab::measure
