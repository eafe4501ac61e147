#include "vmlab/viz/models/input_file.hpp"

#include <QCoreApplication>
#include <QFile>

namespace vmlab::viz {

namespace {

// Enough for a header line or a JSON document's opening brace after a
// byte-order mark and some blank lines.
constexpr qint64 kHeadBytes = 256;

}  // namespace

InputKind input_kind_of_file(const QString& path) {
  const bool named_json = path.endsWith(QLatin1String(".json"), Qt::CaseInsensitive);
  QFile file(path);
  // One the readers cannot open either: they say why, naming the file.
  if (!file.open(QIODevice::ReadOnly)) return named_json ? InputKind::Comparison : InputKind::Trace;
  QByteArray head = file.read(kHeadBytes);
  if (head.startsWith("\xef\xbb\xbf")) head.remove(0, 3);
  const QByteArray start = head.trimmed();
  if (start.startsWith("# vmlab-trace")) return InputKind::Trace;
  if (start.startsWith('{')) return InputKind::Comparison;
  return named_json ? InputKind::Comparison : InputKind::Trace;
}

QString input_kind_text(InputKind kind) {
  switch (kind) {
    case InputKind::Trace:
      return QCoreApplication::translate("vmlab-viz", "a trace (vmlab run --trace)");
    case InputKind::Comparison:
      return QCoreApplication::translate("vmlab-viz", "a comparison (vmlab compare --json)");
  }
  return {};
}

}  // namespace vmlab::viz
