// vmlab-viz's command line:
//   vmlab-viz [FILE]                           the window, with FILE open: a trace or a
//                                              comparison (vmlab compare --json), by its contents
//   vmlab-viz --render VIEW --output IMAGE [--size WxH] [--range FROM-TO] FILE
//                                              VIEW drawn off screen into IMAGE (.png or .svg),
//                                              of the whole run or FROM to TO microseconds;
//                                              FILE the comparison for --render comparison
//   vmlab-viz --self-test-screenshot FILE TRACE
//                                              the window's own test (under Xvfb): open TRACE
//                                              as a person would, zoom, take a screenshot
#pragma once

#include <QSize>
#include <QString>
#include <QStringList>

#include "vmlab/result.hpp"
#include "vmlab/viz/event_store.hpp"

namespace vmlab::viz {

// Exit statuses (sysexits.h's, as the CLI's).
namespace viz_exit {
inline constexpr int kUsage = 64;       // EX_USAGE: a bad option, view or size
inline constexpr int kBadTrace = 65;    // EX_DATAERR: a trace or comparison that does not parse
inline constexpr int kNoTrace = 66;     // EX_NOINPUT: a trace or comparison that cannot be opened
inline constexpr int kSoftware = 70;    // EX_SOFTWARE: a self-test that failed
inline constexpr int kCantCreate = 73;  // EX_CANTCREAT: an output refused or not written
}  // namespace viz_exit

struct CommandLine {
  enum class Mode { Window, Render, SelfTest, Help, Version };
  Mode mode = Mode::Window;
  QString file;           // a trace, or a comparison (input_file.hpp)
  QString view;           // Render
  QString output;         // Render, SelfTest
  QSize size;             // Render; empty: the view's own size
  TimeRange range{0, 0};  // Render; empty: the whole run
  QString help;           // the usage text (Help, and after an error)
};

// `arguments` without the program's name.
Result<CommandLine> parse_command_line(const QStringList& arguments);

// The exit status for an error of rendering or loading.
int exit_status_of(const Error& error);

}  // namespace vmlab::viz
