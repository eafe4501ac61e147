#include "vmlab/viz/models/live_run.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <QDateTime>
#include <QFile>
#include <QThread>
#include <cerrno>
#include <cstring>

namespace vmlab::viz {

namespace {

constexpr int kPollIntervalMs = 30;
constexpr int kStopGraceMs = 10'000;
// Per poll, so a flood of events cannot keep the window from drawing.
constexpr int kReadsPerPoll = 16;
constexpr std::size_t kReadSize = 256 * 1024;

qint64 now_ms() {
  return QDateTime::currentMSecsSinceEpoch();
}

}  // namespace

QStringList LiveRunOptions::arguments() const {
  QStringList arguments{QStringLiteral("run"), QStringLiteral("--cpu"), cpu,
                        QStringLiteral("--workload"), workload};
  if (count) arguments << QStringLiteral("-n") << QString::number(*count);
  if (!irqchip.isEmpty()) arguments << QStringLiteral("--irqchip") << irqchip;
  if (umip) arguments << QStringLiteral("--umip");
  if (!disk_path.isEmpty()) {
    arguments << QStringLiteral("--disk") << disk_path;
    if (!disk_model.isEmpty()) arguments << QStringLiteral("--disk-model") << disk_model;
  }
  arguments << QStringLiteral("--timeout") << QString::number(timeout_seconds);
  return arguments;
}

QString LiveRunOptions::description() const {
  QString text = QStringLiteral("cpu=%1 workload=%2").arg(cpu, workload);
  if (count) text += QStringLiteral(" n=%1").arg(*count);
  if (!disk_path.isEmpty()) text += QStringLiteral(" disk=%1").arg(disk_model);
  return text;
}

LiveRun::LiveRun(QObject* parent) : QObject(parent) {
  m_poll.setInterval(kPollIntervalMs);
  connect(&m_poll, &QTimer::timeout, this, &LiveRun::poll);
  m_kill_timer.setSingleShot(true);
  connect(&m_kill_timer, &QTimer::timeout, this, [this] {
    if (m_process != nullptr) m_process->kill();
  });
}

LiveRun::~LiveRun() {
  if (m_process != nullptr) {
    m_process->disconnect(this);
    m_process->kill();
    m_process->waitForFinished(5000);
  }
  if (m_builder != nullptr) {
    m_builder->wait();
    delete m_builder;
  }
  delete m_directory;
}

QString LiveRun::trace_path() const {
  return m_copy != nullptr ? m_copy->fileName() : QString();
}

bool LiveRun::start(const QString& program, const LiveRunOptions& options) {
  if (m_process != nullptr || m_builder != nullptr) {
    emit failed(tr("A live run is already going; stop it first."));
    return false;
  }
  delete m_directory;
  m_directory = new QTemporaryDir(QDir::tempPath() + QStringLiteral("/vmlab-viz-live-XXXXXX"));
  if (!m_directory->isValid()) {
    emit failed(
        tr("Cannot make a directory for the live stream: %1").arg(m_directory->errorString()));
    return false;
  }
  const QByteArray fifo = QFile::encodeName(m_directory->filePath(QStringLiteral("live.fifo")));
  if (::mkfifo(fifo.constData(), 0600) != 0) {
    emit failed(tr("Cannot make the live stream's FIFO %1: %2")
                    .arg(QFile::decodeName(fifo), QString::fromLocal8Bit(std::strerror(errno))));
    return false;
  }
  // Open before vmlab starts: it refuses a FIFO nobody reads. Non-blocking,
  // so the window never waits on it.
  m_fifo = FileDescriptor(::open(fifo.constData(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!m_fifo.valid()) {
    emit failed(tr("Cannot open the live stream's FIFO: %1")
                    .arg(QString::fromLocal8Bit(std::strerror(errno))));
    return false;
  }
  delete m_copy;
  m_copy = new QFile(m_directory->filePath(QStringLiteral("live.trace")), this);
  if (!m_copy->open(QIODevice::WriteOnly)) {
    emit failed(
        tr("Cannot keep the live trace in %1: %2").arg(m_copy->fileName(), m_copy->errorString()));
    return false;
  }
  m_reader = std::make_unique<TraceLineReader>();
  m_partial.clear();
  m_events.clear();
  m_unshown = 0;
  m_stream_ended = false;
  m_failed = false;
  m_snapshot_events = 0;
  m_built.reset();
  m_exit_code.reset();
  m_exit_how.clear();
  m_summary.clear();
  m_errors.clear();

  m_process = new QProcess(this);
  connect(m_process, &QProcess::finished, this, &LiveRun::process_finished);
  connect(m_process, &QProcess::errorOccurred, this, [this](QProcess::ProcessError error) {
    if (error == QProcess::FailedToStart) {
      end_with_failure(
          tr("Cannot start %1: %2").arg(m_process->program(), m_process->errorString()));
    }
  });
  m_started_ms = now_ms();
  m_last_snapshot_ms = m_started_ms;
  m_process->start(program, options.arguments()
                                << QStringLiteral("--quiet") << QStringLiteral("--live")
                                << QFile::decodeName(fifo));
  m_poll.start();
  return true;
}

void LiveRun::stop() {
  if (m_process == nullptr || m_exit_code) return;
  m_process->terminate();
  m_kill_timer.start(kStopGraceMs);
}

void LiveRun::poll() {
  if (!m_fifo.valid()) return;
  std::string buffer(kReadSize, '\0');
  const bool exited = m_exit_code.has_value();
  for (int reads = 0; exited || reads < kReadsPerPoll; ++reads) {
    const ssize_t got = ::read(m_fifo.get(), buffer.data(), buffer.size());
    if (got > 0) {
      m_copy->write(buffer.data(), got);
      consume(buffer.data(), static_cast<std::size_t>(got));
      if (m_failed) return;
      continue;
    }
    if (got < 0 && errno == EINTR) continue;
    // End of file: vmlab closed the stream, or (before it has opened it)
    // has exited without.
    if (got == 0 && (m_reader->lines() > 0 || exited)) m_stream_ended = true;
    break;
  }
  const qint64 now = now_ms();
  emit progress(m_events.size(), static_cast<double>(now - m_started_ms) / 1000.0);
  const bool due = now - m_last_snapshot_ms >= kSnapshotIntervalMs || m_stream_ended;
  if (due && m_builder == nullptr && m_events.size() != m_snapshot_events) build_snapshot();
  maybe_finish();
}

void LiveRun::consume(const char* bytes, std::size_t size) {
  m_partial.append(bytes, size);
  std::size_t start = 0;
  while (true) {
    const std::size_t end = m_partial.find('\n', start);
    if (end == std::string::npos) break;
    const std::string_view line(m_partial.data() + start, end - start);
    start = end + 1;
    if (line.rfind("# end: ", 0) == 0) m_exit_how = QString::fromUtf8(line.substr(7));
    auto event = m_reader->read_line(line);
    if (!event) {
      end_with_failure(tr("The live stream from vmlab is not a trace: %1")
                           .arg(QString::fromStdString(event.error().message)));
      return;
    }
    if (!*event) continue;
    if (m_events.size() < m_maximum_events) {
      m_events.push_back(**event);
    } else {
      ++m_unshown;
    }
  }
  m_partial.erase(0, start);
}

void LiveRun::build_snapshot() {
  Trace trace;
  static_cast<TraceInfo&>(trace) = m_reader->info();
  trace.events = m_events;
  m_snapshot_events = m_events.size();
  m_last_snapshot_ms = now_ms();
  m_builder = QThread::create([this, trace = std::move(trace)] {
    auto model = std::make_shared<const TraceModel>(TraceModel::from_trace(trace));
    QMetaObject::invokeMethod(
        this,
        [this, model] {
          m_built = model;
          snapshot_built();
        },
        Qt::QueuedConnection);
  });
  m_builder->start();
}

void LiveRun::snapshot_built() {
  m_builder->wait();
  delete m_builder;
  m_builder = nullptr;
  if (m_failed) return;
  emit snapshot(m_built);
  maybe_finish();
}

void LiveRun::process_finished(int exit_code, QProcess::ExitStatus status) {
  m_kill_timer.stop();
  m_exit_code = status == QProcess::NormalExit ? exit_code : -1;
  m_summary = QString::fromLocal8Bit(m_process->readAllStandardOutput());
  m_errors = QString::fromLocal8Bit(m_process->readAllStandardError()).trimmed();
  // Refused before the guest ran (a usage error, an unusable /dev/kvm):
  // nothing was streamed, and vmlab said why.
  if (m_reader->lines() == 0 && *m_exit_code != 0 && m_exit_code != 130) {
    end_with_failure(m_errors.isEmpty() ? tr("vmlab exited with status %1").arg(*m_exit_code)
                                        : m_errors);
    return;
  }
  if (*m_exit_code == -1 && m_exit_how.isEmpty()) m_exit_how = tr("vmlab was killed");
  poll();  // the rest of the stream: its writer has gone, so it ends
}

void LiveRun::maybe_finish() {
  if (!m_exit_code || !m_stream_ended || m_builder != nullptr || m_failed) return;
  if (m_events.size() != m_snapshot_events) {
    build_snapshot();
    return;
  }
  m_poll.stop();
  m_fifo.reset();
  m_copy->close();
  m_process->deleteLater();
  m_process = nullptr;
  emit finished(*m_exit_code, m_exit_how);
}

void LiveRun::end_with_failure(const QString& message) {
  if (m_failed) return;
  m_failed = true;
  m_poll.stop();
  m_kill_timer.stop();
  if (m_process != nullptr) {
    m_process->disconnect(this);
    if (m_process->state() != QProcess::NotRunning) {
      m_process->kill();
      m_process->waitForFinished(5000);
    }
    m_process->deleteLater();
    m_process = nullptr;
  }
  m_fifo.reset();
  if (m_copy != nullptr) m_copy->close();
  emit failed(message);
}

}  // namespace vmlab::viz
