// Loads a trace off the GUI thread (STYLE.md 8: parsing never blocks the
// window). The worker reports progress and its end to the loader's thread
// through queued calls; cancel() makes the engine's progress callback answer
// false, which stops the load at its next report.
#pragma once

#include <QObject>
#include <QString>
#include <QThread>
#include <atomic>
#include <memory>
#include <system_error>

#include "vmlab/viz/trace_model.hpp"

namespace vmlab::viz {

class TraceLoader final : public QObject {
  Q_OBJECT

 public:
  explicit TraceLoader(QObject* parent = nullptr);
  ~TraceLoader() override;  // cancels a load under way and waits for its thread

  // Starts loading `path`; false (and nothing started) while a load is under way.
  bool start(const QString& path);
  void cancel();
  bool running() const { return m_thread != nullptr; }

 signals:
  // 0 to 1000, now and then while loading.
  void progress(int permille);
  void loaded(std::shared_ptr<const vmlab::viz::TraceModel> trace, const QString& path);
  // A load that failed (the message names the file and, for a bad line, its
  // number) or was cancelled (kind TraceError::kCancelled).
  void failed(std::error_code kind, const QString& message, const QString& path);

 private:
  void finish();

  QThread* m_thread = nullptr;
  std::shared_ptr<std::atomic<bool>> m_cancelled;
};

}  // namespace vmlab::viz
