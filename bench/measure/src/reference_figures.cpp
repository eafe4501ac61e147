#include "vmlab/measure/reference_figures.hpp"

namespace vmlab::measure {

namespace {

constexpr std::string_view kOperations[] = {"syscall", "in",      "cr8wr", "call/ret",
                                            "pgfault", "divzero", "ptemod"};

// Adams and Agesen, section "Nanobenchmarks" and its figure: "in" natively
// reads a chipset register (port 0x80), which the software VMM answers from
// its own model "fifteen times faster than native"; cr8wr under the software
// VMM is 35 cycles, "about four times faster than native"; a PTE write is a
// "single cycle store" natively. Their test kernel never takes an interrupt,
// so no cr8 write exits under VT-x, and a system call there never leaves the
// guest.
constexpr ReferenceRow kRows[] = {
    {"Native (2006)",
     "the test kernel on the bare machine",
     {{std::nullopt, false, "no figure in the text"},
      {3209, false, ""},
      {140, true, "4 x the software VMM's 35"},
      {11, false, ""},
      {1093, false, ""},
      {889, false, ""},
      {1, true, "a single-cycle store"}}},
    {"Software VMM (2006)",
     "VMware's binary translator",
     {{std::nullopt, false, "native + about 2,000"},
      {214, true, "native / 15"},
      {35, false, ""},
      {51, false, ""},
      {3927, false, ""},
      {3223, false, ""},
      {391, false, ""}}},
    {"Hardware VMM (2006)",
     "VMware's first VT-x VMM (no nested paging)",
     {{std::nullopt, false, "as native"},
      {15826, false, ""},
      {std::nullopt, false, "as native"},
      {11, false, ""},
      {11242, false, ""},
      {1014, false, ""},
      {12733, false, ""}}},
};

}  // namespace

std::span<const std::string_view> adams_agesen_operations() {
  return kOperations;
}

std::span<const ReferenceRow> adams_agesen_rows() {
  return kRows;
}

std::string_view adams_agesen_citation() {
  return "Keith Adams and Ole Agesen, \"A Comparison of Software and Hardware Techniques for "
         "x86 Virtualization\", ASPLOS XII, San Jose, October 2006 (ACM DOI "
         "10.1145/1168857.1168860): the virtualization nanobenchmarks (their Figure 4), CPU "
         "cycles on a Pentium 4 with VT-x";
}

}  // namespace vmlab::measure
