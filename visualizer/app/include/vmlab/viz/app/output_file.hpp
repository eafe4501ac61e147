// Writing an exported or rendered image without destroying anything: an
// output may replace only nothing, an empty file, or an image vmlab-viz
// wrote itself (marked inside: a PNG's "Software" text, an SVG's
// description). The image goes to a temporary file beside the target and
// is renamed over it, so a failed write leaves the target as it was.
// (The CLI's OutputFile does the same for traces; vmlab-viz sits beside the
// CLI, not above it, so it cannot use that one, and images need less:
// no locks, no inputs to protect.)
#pragma once

#include <QString>
#include <functional>
#include <string>
#include <string_view>

#include "vmlab/result.hpp"

namespace vmlab::viz {

enum class VizError {
  kUsage = 1,         // a command line vmlab-viz does not take
  kUnknownView,       // --render names no view (the message lists them)
  kOutputNotAFile,    // the output is a directory, a FIFO, a device
  kOutputProtected,   // the output holds something vmlab-viz did not write
  kOutputUnwritable,  // the output cannot be created or written
  kRenderFailed,      // the image could not be made
};
constexpr const char* error_domain(VizError) {
  return "vmlab-viz";
}
using vmlab::make_error_code;

// What vmlab-viz writes into its images so that it knows them again.
inline constexpr std::string_view kSoftwareName = "vmlab-viz";

// Whether the first bytes of a file say vmlab-viz wrote it: a PNG with a
// "Software" text chunk naming vmlab-viz, or an SVG whose description does.
bool written_by_vmlab_viz(std::string_view head);

// Whether `path` may be written: absent, or a regular file that is empty or
// written_by_vmlab_viz.
Status check_output(const std::string& path);

// Checks `path`, calls `write` with a temporary file beside it (false: it
// failed), checks `path` again and renames the temporary over it.
Status write_output(const std::string& path, const std::function<bool(const QString&)>& write);

}  // namespace vmlab::viz

VMLAB_ERROR_KINDS(vmlab::viz::VizError);
