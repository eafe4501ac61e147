// Graphviz's libgvc for the views that draw graphs: DOT text in, the SVG
// of its `dot` layout out.
//
// libgvc keeps global state (its context and plugin list, cgraph's error
// handler and level) and is not thread-safe: call it on the GUI thread only.
// One context, made at the first call, serves the whole program (loading
// the plugins again for every graph would cost more than laying it out).
#pragma once

#include <QByteArray>
#include <string>

#include "vmlab/result.hpp"

namespace vmlab::viz {

// The SVG of `dot` laid out by `dot`. Errors (VizError::kRenderFailed) say
// what Graphviz said: a DOT syntax error with its line, a layout or SVG
// plugin that is not installed, a call from another thread.
Result<QByteArray> layout_svg(const std::string& dot);

}  // namespace vmlab::viz
