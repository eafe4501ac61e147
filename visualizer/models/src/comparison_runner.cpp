#include "vmlab/viz/models/comparison_runner.hpp"

#include <QFileInfo>
#include <QRegularExpression>

namespace vmlab::viz {

namespace {

// The most stderr a failure's message carries: its last lines say why.
constexpr int kMostErrorLines = 40;

}  // namespace

QStringList compare_arguments(const ComparisonRequest& request, const QString& json_path) {
  QStringList arguments{QStringLiteral("compare")};
  auto list = [&](const char* option, const QStringList& values) {
    if (!values.isEmpty()) arguments << QLatin1String(option) << values.join(QLatin1Char(','));
  };
  list("--workloads", request.workloads);
  list("--cpu", request.cpus);
  list("--irqchip", request.irqchips);
  list("--disk-model", request.disk_models);
  if (!request.memory.isEmpty()) arguments << QStringLiteral("--mem") << request.memory;
  if (!request.timeout_seconds.isEmpty()) {
    arguments << QStringLiteral("--timeout") << request.timeout_seconds;
  }
  arguments << QStringLiteral("--json") << json_path;
  return arguments;
}

std::optional<CompareProgress> parse_progress_line(const QString& line) {
  static const QRegularExpression kProgress(QStringLiteral("^\\[(\\d{1,9})/(\\d{1,9})\\] \\S"));
  const auto match = kProgress.match(line);
  if (!match.hasMatch()) return std::nullopt;
  CompareProgress progress{match.captured(1).toInt(), match.captured(2).toInt(), line};
  if (progress.total <= 0 || progress.done > progress.total) return std::nullopt;
  return progress;
}

ComparisonRunner::ComparisonRunner(QObject* parent) : QObject(parent) {
  m_kill_timer.setSingleShot(true);
  m_kill_timer.setInterval(kKillAfterMilliseconds);
  connect(&m_kill_timer, &QTimer::timeout, this, [this] {
    if (m_process != nullptr) m_process->kill();
  });
}

ComparisonRunner::~ComparisonRunner() {
  if (m_process == nullptr) return;
  // No one is left to hear how it ended; the child must still not outlive
  // the window, nor leave its temporary files.
  m_process->disconnect(this);
  m_process->terminate();
  if (!m_process->waitForFinished(kKillAfterMilliseconds)) {
    m_process->kill();
    m_process->waitForFinished();
  }
}

bool ComparisonRunner::start(const QString& program, const ComparisonRequest& request,
                             const QString& json_path) {
  if (m_process != nullptr) return false;
  m_program = program;
  m_arguments = compare_arguments(request, json_path);
  m_json_path = json_path;
  m_pending.clear();
  m_errors.clear();
  m_last_progress.clear();
  m_cancelling = false;
  m_process = new QProcess(this);
  // stdout is the table vmlab also prints; the results are the JSON file.
  m_process->setStandardOutputFile(QProcess::nullDevice());
  connect(m_process, &QProcess::readyReadStandardError, this, &ComparisonRunner::read_errors);
  connect(m_process, &QProcess::finished, this, &ComparisonRunner::ended);
  connect(m_process, &QProcess::errorOccurred, this, [this](QProcess::ProcessError error) {
    if (error == QProcess::FailedToStart) start_failed();
  });
  m_process->start(m_program, m_arguments);
  return true;
}

void ComparisonRunner::cancel() {
  if (m_process == nullptr || m_cancelling) return;
  m_cancelling = true;
  m_process->terminate();
  m_kill_timer.start();
}

QString ComparisonRunner::command_text() const {
  return (QStringList{m_program} + m_arguments).join(QLatin1Char(' '));
}

void ComparisonRunner::read_errors() {
  if (m_process == nullptr) return;
  m_pending += m_process->readAllStandardError();
  qsizetype end;
  while ((end = m_pending.indexOf('\n')) >= 0) {
    const QString line = QString::fromLocal8Bit(m_pending.left(end)).trimmed();
    m_pending.remove(0, end + 1);
    if (line.isEmpty()) continue;
    if (const auto step = parse_progress_line(line)) {
      m_last_progress = line;
      emit progress(step->done, step->total, line);
      continue;
    }
    m_errors << line;
    if (m_errors.size() > kMostErrorLines) m_errors.removeFirst();
  }
}

void ComparisonRunner::ended(int exit_code, QProcess::ExitStatus status) {
  read_errors();
  if (!m_pending.trimmed().isEmpty()) m_errors << QString::fromLocal8Bit(m_pending).trimmed();
  m_kill_timer.stop();
  m_process->deleteLater();
  m_process = nullptr;
  if (m_cancelling) {
    emit cancelled();
    return;
  }
  // vmlab writes the file only at the end, all rows in it, failed or not.
  if (status == QProcess::NormalExit && QFileInfo(m_json_path).isFile()) {
    emit finished(m_json_path);
    return;
  }
  const QString how = status == QProcess::NormalExit
                          ? tr("vmlab compare failed (exit status %1)").arg(exit_code)
                          : tr("vmlab compare was killed");
  QStringList said = m_errors;
  if (said.isEmpty() && !m_last_progress.isEmpty()) said << m_last_progress;
  emit failed(said.isEmpty() ? how + tr(", saying nothing on stderr.")
                             : how + QStringLiteral(":\n") + said.join(QLatin1Char('\n')));
}

void ComparisonRunner::start_failed() {
  if (m_process == nullptr) return;
  const QString why = m_process->errorString();
  m_process->deleteLater();
  m_process = nullptr;
  emit failed(tr("cannot start %1: %2").arg(m_program, why));
}

}  // namespace vmlab::viz
