// What the Qt tests share: a QAbstractItemModelTester whose complaints
// become test failures, and waiting for queued signals.
#pragma once

#include <gtest/gtest.h>

#include <QAbstractItemModelTester>
#include <QCoreApplication>
#include <QElapsedTimer>
#include <QString>
#include <QStringList>
#include <functional>
#include <memory>

namespace vmlab::viz::testing {

// Collects what Qt prints while it lives (QAbstractItemModelTester in
// Warning mode reports each failed check as a qWarning).
class QtMessages {
 public:
  QtMessages() {
    s_current = this;
    m_previous = qInstallMessageHandler(&QtMessages::handle);
  }
  ~QtMessages() {
    qInstallMessageHandler(m_previous);
    s_current = nullptr;
  }
  QtMessages(const QtMessages&) = delete;
  QtMessages& operator=(const QtMessages&) = delete;

  const QStringList& warnings() const { return m_warnings; }

 private:
  static void handle(QtMsgType type, const QMessageLogContext&, const QString& message) {
    if (s_current != nullptr && type != QtDebugMsg && type != QtInfoMsg) {
      s_current->m_warnings.append(message);
    }
  }
  static inline QtMessages* s_current = nullptr;
  QtMessageHandler m_previous = nullptr;
  QStringList m_warnings;
};

// Runs Qt's model checks on `model` now and after every change it signals
// while the checker lives; each failure is a test failure at destruction.
class CheckedModel {
 public:
  explicit CheckedModel(QAbstractItemModel* model)
      : m_tester(std::make_unique<QAbstractItemModelTester>(
            model, QAbstractItemModelTester::FailureReportingMode::Warning)) {}
  ~CheckedModel() {
    m_tester.reset();
    EXPECT_TRUE(m_messages.warnings().isEmpty())
        << "QAbstractItemModelTester: " << m_messages.warnings().join("\n").toStdString();
  }

 private:
  QtMessages m_messages;
  std::unique_ptr<QAbstractItemModelTester> m_tester;
};

// Processes events until `done` holds or `milliseconds` pass.
inline bool wait_until(const std::function<bool()>& done, int milliseconds = 10000) {
  QElapsedTimer timer;
  timer.start();
  while (!done()) {
    if (timer.elapsed() > milliseconds) return false;
    QCoreApplication::processEvents(QEventLoop::AllEvents, 10);
  }
  return true;
}

}  // namespace vmlab::viz::testing
