#include "vmlab/viz/models/comparison_document.hpp"

#include <QFile>

namespace vmlab::viz {

ComparisonDocument::ComparisonDocument(QObject* parent) : QObject(parent) {}

void ComparisonDocument::set_results(ComparisonResults results, const QString& path) {
  m_results = std::move(results);
  m_path = path;
  m_loaded = true;
  emit results_changed();
}

Status ComparisonDocument::load_file(const QString& path) {
  auto results = read_comparison_file(QFile::encodeName(path).toStdString());
  if (!results) return results.error();
  set_results(std::move(*results), path);
  return {};
}

}  // namespace vmlab::viz
