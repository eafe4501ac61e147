// The comparison a window shows: the results of one `vmlab compare --json`
// and where they came from, the comparison view's input as TraceDocument is
// the trace views'. A comparison has no trace and no time range, so the two
// documents live side by side; the window holds one of each.
#pragma once

#include <QObject>
#include <QString>

#include "vmlab/result.hpp"
#include "vmlab/viz/comparison.hpp"

namespace vmlab::viz {

class ComparisonDocument final : public QObject {
  Q_OBJECT

 public:
  explicit ComparisonDocument(QObject* parent = nullptr);

  void set_results(ComparisonResults results, const QString& path = {});
  // Reads `path` (read_comparison_file); an error, which names the file and
  // the field at fault, leaves the document as it was.
  Status load_file(const QString& path);

  bool has_results() const { return m_loaded; }
  const ComparisonResults& results() const { return m_results; }
  const QString& path() const { return m_path; }

 signals:
  // New results (or none): everything drawn from the old ones is stale.
  void results_changed();

 private:
  ComparisonResults m_results;
  QString m_path;
  bool m_loaded = false;
};

}  // namespace vmlab::viz
