// What every vmlab benchmark binary's main() does: run the benchmarks it
// registered, with the platform (PLATFORM.md: every report names the backend
// and CPU) in the report's context, then print its own summary and the
// platform line.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>

#include "vmlab/platform.hpp"

namespace vmlab::bench {

// main's exit status: 1 when the command line holds an argument Google
// Benchmark does not know.
inline int run_benchmarks(int& argc, char** argv, void (*print_summary)()) {
  const std::string platform = detect_platform().one_line();
  benchmark::AddCustomContext("vmlab", platform);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  print_summary();
  std::printf("%s\n", platform.c_str());
  return 0;
}

}  // namespace vmlab::bench
