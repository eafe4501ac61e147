#include "vmlab/viz/models/comparison_runner.hpp"

#include <QDir>
#include <QFileInfo>
#include <QRegularExpression>
#include <QStandardPaths>

namespace vmlab::viz {

namespace {

// The most stderr a failure's message carries: its last lines say why.
constexpr int kMostErrorLines = 40;
constexpr int kHelpMilliseconds = 10000;

Error not_understood(const QString& what) {
  return Error{RunnerError::kNotUnderstood,
               QStringLiteral("vmlab's help did not list %1; is it the vmlab that came with "
                              "this vmlab-viz?")
                   .arg(what)
                   .toStdString()};
}

// The entries of a --help's option list, each joined into one line:
// "--cpu LIST CPU modes to compare, any of hvm, full, bt, para (default: ...)".
QStringList option_entries(const QString& help) {
  QStringList entries;
  bool in_options = false;
  static const QRegularExpression kSpaces(QStringLiteral("\\s+"));
  for (const QString& line : help.split(QLatin1Char('\n'))) {
    if (line.startsWith(QLatin1String("Options:"))) {
      in_options = true;
      continue;
    }
    if (!in_options) continue;
    const QString trimmed = line.trimmed();
    if (trimmed.isEmpty()) continue;
    if (trimmed.startsWith(QLatin1Char('-')) && line.startsWith(QLatin1String("  -"))) {
      entries << trimmed;
    } else if (!entries.isEmpty() && line.startsWith(QLatin1Char(' '))) {
      entries.last() += QLatin1Char(' ') + trimmed;
    } else {
      in_options = false;  // the next section
    }
  }
  for (QString& entry : entries)
    entry.replace(kSpaces, QStringLiteral(" "));
  return entries;
}

// The entry of `option` ("--cpu"), or empty.
QString entry_of(const QStringList& entries, const QString& option) {
  for (const QString& entry : entries) {
    // "-h,--help ..." or "--cpu LIST ...".
    const QString name = entry.section(QLatin1Char(' '), 0, 0);
    if (name == option || name.endsWith(QLatin1Char(',') + option)) return entry;
  }
  return {};
}

QString captured(const QString& text, const QString& pattern) {
  const auto match = QRegularExpression(pattern).match(text);
  return match.hasMatch() ? match.captured(1) : QString();
}

QStringList comma_list(const QString& text) {
  QStringList items;
  for (const QString& item : text.split(QLatin1Char(','), Qt::SkipEmptyParts))
    items << item.trimmed();
  return items;
}

// `vmlab run --help`'s table: "  syscalls    N=1000      N null system
// calls from user mode", a description running on in indented lines.
Result<std::vector<WorkloadOffer>> workload_table(const QString& run_help) {
  static const QRegularExpression kEntry(
      QStringLiteral("^  ([a-z][a-z0-9-]*)\\s+N=(\\d+)\\s+(.*)$"));
  std::vector<WorkloadOffer> workloads;
  bool in_table = false;
  for (const QString& line : run_help.split(QLatin1Char('\n'))) {
    if (line == QLatin1String("workloads:")) {
      in_table = true;
      continue;
    }
    if (!in_table) continue;
    if (line.trimmed().isEmpty()) break;
    const auto match = kEntry.match(line);
    if (match.hasMatch()) {
      workloads.push_back({.name = match.captured(1),
                           .default_count = match.captured(2).toULongLong(),
                           .description = match.captured(3).trimmed(),
                           .compare_count = std::nullopt});
    } else if (!workloads.empty() && line.startsWith(QLatin1String("    "))) {
      workloads.back().description += QLatin1Char(' ') + line.trimmed();
    } else {
      break;
    }
  }
  if (workloads.empty()) return not_understood(QStringLiteral("its workloads (vmlab run --help)"));
  return workloads;
}

Result<QString> run_for_text(const QString& program, const QStringList& arguments) {
  QProcess process;
  process.setProcessChannelMode(QProcess::SeparateChannels);
  process.start(program, arguments);
  const QString command = program + QLatin1Char(' ') + arguments.join(QLatin1Char(' '));
  if (!process.waitForStarted(kHelpMilliseconds)) {
    return Error{
        RunnerError::kCannotStart,
        QStringLiteral("cannot run %1: %2").arg(command, process.errorString()).toStdString()};
  }
  if (!process.waitForFinished(kHelpMilliseconds)) {
    process.kill();
    process.waitForFinished();
    return Error{RunnerError::kCannotStart,
                 QStringLiteral("%1 did not finish").arg(command).toStdString()};
  }
  if (process.exitStatus() != QProcess::NormalExit || process.exitCode() != 0) {
    return Error{RunnerError::kCannotStart,
                 QStringLiteral("%1 failed: %2")
                     .arg(command, QString::fromLocal8Bit(process.readAllStandardError()).trimmed())
                     .toStdString()};
  }
  return QString::fromLocal8Bit(process.readAllStandardOutput());
}

}  // namespace

Result<VmlabProgram> find_vmlab(const QString& viz_directory) {
  const QDir directory(viz_directory);
  const struct {
    QString path;
    QString where;
  } candidates[] = {
      {directory.absoluteFilePath(QStringLiteral("../../cli/vmlab")),
       QStringLiteral("in the build tree beside vmlab-viz")},
      {directory.absoluteFilePath(QStringLiteral("vmlab")),
       QStringLiteral("installed beside vmlab-viz")},
  };
  for (const auto& candidate : candidates) {
    const QFileInfo file(candidate.path);
    if (file.isFile() && file.isExecutable()) {
      return VmlabProgram{QDir::cleanPath(file.absoluteFilePath()), candidate.where};
    }
  }
  const QString on_path = QStandardPaths::findExecutable(QStringLiteral("vmlab"));
  if (!on_path.isEmpty()) return VmlabProgram{on_path, QStringLiteral("on PATH")};
  return Error{RunnerError::kNoVmlab,
               QStringLiteral("no vmlab program beside vmlab-viz (%1) or on PATH; build it "
                              "(cmake --build --preset default --target vmlab) or put it on PATH")
                   .arg(QDir::cleanPath(viz_directory))
                   .toStdString()};
}

Result<CompareOffer> parse_compare_offer(const QString& compare_help, const QString& run_help) {
  auto workloads = workload_table(run_help);
  if (!workloads) return workloads.error();
  const QStringList entries = option_entries(compare_help);
  CompareOffer offer;
  offer.workloads = std::move(*workloads);
  offer.cpus = comma_list(
      captured(entry_of(entries, QStringLiteral("--cpu")), QStringLiteral("any of ([^(]+) \\(")));
  if (offer.cpus.isEmpty()) return not_understood(QStringLiteral("its CPU modes (--cpu)"));
  offer.irqchips = comma_list(captured(entry_of(entries, QStringLiteral("--irqchip")),
                                       QStringLiteral(": ([a-z, ]+) or both")));
  if (offer.irqchips.isEmpty()) return not_understood(QStringLiteral("its --irqchip models"));
  offer.disk_models = comma_list(captured(entry_of(entries, QStringLiteral("--disk-model")),
                                          QStringLiteral("any of ([a-z, ]+):")));
  if (offer.disk_models.isEmpty()) return not_understood(QStringLiteral("its disk models"));
  const QString defaults = captured(entry_of(entries, QStringLiteral("--workloads")),
                                    QStringLiteral("\\(default: ([^)]+)\\)"));
  for (const QString& item : comma_list(defaults)) {
    const QString name = item.section(QLatin1Char(':'), 0, 0);
    bool number = false;
    const std::uint64_t count = item.section(QLatin1Char(':'), 1).toULongLong(&number);
    for (WorkloadOffer& workload : offer.workloads) {
      if (workload.name == name && number) workload.compare_count = count;
    }
  }
  offer.default_memory = captured(entry_of(entries, QStringLiteral("--mem")),
                                  QStringLiteral("\\(default ([0-9]+[KMG]?)\\)"));
  offer.default_timeout = captured(entry_of(entries, QStringLiteral("--timeout")),
                                   QStringLiteral("\\(default ([0-9.]+)\\)"));
  return offer;
}

Result<CompareOffer> ask_compare_offer(const QString& program) {
  auto compare_help = run_for_text(program, {QStringLiteral("compare"), QStringLiteral("--help")});
  if (!compare_help) return compare_help.error();
  auto run_help = run_for_text(program, {QStringLiteral("run"), QStringLiteral("--help")});
  if (!run_help) return run_help.error();
  return parse_compare_offer(*compare_help, *run_help);
}

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
