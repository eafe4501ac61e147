#include "vmlab/viz/models/trace_loader.hpp"

#include <QFile>

namespace vmlab::viz {

TraceLoader::TraceLoader(QObject* parent) : QObject(parent) {}

TraceLoader::~TraceLoader() {
  cancel();
  if (m_thread != nullptr) {
    m_thread->wait();
    delete m_thread;
  }
}

bool TraceLoader::start(const QString& path) {
  if (m_thread != nullptr) return false;
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  m_cancelled = cancelled;
  m_thread = QThread::create([this, path, cancelled] {
    int reported = -1;
    const LoadProgressCallback progress = [&](const LoadProgress& now) {
      const int permille = static_cast<int>(now.fraction() * 1000.0);
      if (permille != reported) {
        reported = permille;
        // Queued: the slot runs on the loader's thread; if the loader is
        // gone by then, Qt drops the call.
        QMetaObject::invokeMethod(
            this, [this, permille] { emit this->progress(permille); }, Qt::QueuedConnection);
      }
      return !cancelled->load();
    };
    auto model = TraceModel::load_file(QFile::encodeName(path).toStdString(), progress);
    if (model) {
      auto shared = std::make_shared<const TraceModel>(std::move(*model));
      QMetaObject::invokeMethod(
          this,
          [this, shared, path] {
            finish();
            emit loaded(shared, path);
          },
          Qt::QueuedConnection);
    } else {
      const Error error = model.error();
      QMetaObject::invokeMethod(
          this,
          [this, error, path] {
            finish();
            emit failed(error.kind, QString::fromStdString(error.message), path);
          },
          Qt::QueuedConnection);
    }
  });
  m_thread->start();
  return true;
}

void TraceLoader::cancel() {
  if (m_cancelled) m_cancelled->store(true);
}

void TraceLoader::finish() {
  // The thread posted this as its last act; wait for it to return.
  if (m_thread != nullptr) {
    m_thread->wait();
    delete m_thread;
    m_thread = nullptr;
  }
  m_cancelled.reset();
}

}  // namespace vmlab::viz
