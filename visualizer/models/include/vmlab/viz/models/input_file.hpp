// What a file given to vmlab-viz holds, told by its first bytes, so that
// `vmlab-viz FILE`, File > Open and a drop open either kind whatever it is
// called: a trace (`vmlab run --trace`, starting "# vmlab-trace") or a
// comparison (`vmlab compare --json`, a JSON object). Only when the start
// says neither (an empty file, something else) does the name decide: .json
// is read as a comparison, anything else as a trace, so that the error the
// reader gives is about the format the user meant.
#pragma once

#include <QString>

namespace vmlab::viz {

enum class InputKind { Trace, Comparison };

InputKind input_kind_of_file(const QString& path);
// "a trace (vmlab run --trace)", "a comparison (vmlab compare --json)".
QString input_kind_text(InputKind kind);

}  // namespace vmlab::viz
