#include "vmlab/viz/models/vmlab_program.hpp"

#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>
#include <QProcess>
#include <QStandardPaths>

namespace vmlab::viz {

namespace {

bool executable(const QString& path) {
  const QFileInfo file(path);
  return file.isFile() && file.isExecutable();
}

}  // namespace

Result<QString> find_vmlab_program() {
  const QString from_environment = qEnvironmentVariable("VMLAB_CLI");
  if (!from_environment.isEmpty()) {
    if (executable(from_environment)) return from_environment;
    return Error{ProgramError::kNotFound, "VMLAB_CLI is '" + from_environment.toStdString() +
                                              "', which is not an executable file"};
  }
  const QDir here(QCoreApplication::applicationDirPath());
  const QStringList candidates = {here.filePath(QStringLiteral("vmlab")),
                                  here.filePath(QStringLiteral("../../cli/vmlab")),
                                  here.filePath(QStringLiteral("../../../cli/vmlab"))};
  for (const QString& candidate : candidates) {
    if (executable(candidate)) return QFileInfo(candidate).canonicalFilePath();
  }
  const QString on_path = QStandardPaths::findExecutable(QStringLiteral("vmlab"));
  if (!on_path.isEmpty()) return on_path;
  return Error{ProgramError::kNotFound,
               "no vmlab program beside vmlab-viz (" + here.path().toStdString() +
                   "), in the build tree or on PATH; build it (cmake --build --preset default) "
                   "or set VMLAB_CLI to its path"};
}

Result<RunChoices> parse_run_choices(const QString& text) {
  const QStringList lines = text.split(QLatin1Char('\n'));
  if (lines.isEmpty() || lines.first() != QLatin1String("# vmlab-choices 1")) {
    return Error{ProgramError::kMalformed,
                 "vmlab info --choices did not begin with '# vmlab-choices 1' (a vmlab too old "
                 "for this vmlab-viz?)"};
  }
  RunChoices choices;
  for (qsizetype index = 1; index < lines.size(); ++index) {
    const QString& line = lines[index];
    if (line.isEmpty()) continue;
    const QStringList fields = line.split(QLatin1Char('\t'));
    auto bad = [&] {
      return Error{ProgramError::kMalformed, "vmlab info --choices, line " +
                                                 std::to_string(index + 1) + ": '" +
                                                 line.left(80).toStdString() + "'"};
    };
    const QString& option = fields.first();
    if (option == QLatin1String("--workload")) {
      bool number = false;
      if (fields.size() != 4) return bad();
      const std::uint64_t count = fields[2].toULongLong(&number);
      if (!number) return bad();
      choices.workloads.push_back({fields[1], count, fields[3]});
      continue;
    }
    if (option == QLatin1String("--compare-workload")) {
      bool number = false;
      if (fields.size() != 3) return bad();
      const std::uint64_t count = fields[2].toULongLong(&number);
      if (!number) return bad();
      choices.compare_workloads.emplace_back(fields[1], count);
      continue;
    }
    if (fields.size() != 3) return bad();
    const ProgramChoice choice{fields[1], fields[2]};
    if (option == QLatin1String("--cpu")) {
      choices.cpus.push_back(choice);
    } else if (option == QLatin1String("--disk-model")) {
      choices.disk_models.push_back(choice);
    } else if (option == QLatin1String("--irqchip")) {
      choices.irqchips.push_back(choice);
    }
    // Options a newer vmlab lists and this vmlab-viz does not offer are left out.
  }
  if (choices.cpus.empty() || choices.workloads.empty()) {
    return Error{ProgramError::kMalformed, "vmlab info --choices listed no --cpu or no --workload"};
  }
  return choices;
}

Result<RunChoices> query_run_choices(const QString& program) {
  QProcess process;
  process.start(program, {QStringLiteral("info"), QStringLiteral("--choices")});
  if (!process.waitForFinished(10'000) || process.exitStatus() != QProcess::NormalExit ||
      process.exitCode() != 0) {
    const QString why = process.error() == QProcess::FailedToStart
                            ? QStringLiteral("it did not start")
                            : QString::fromLocal8Bit(process.readAllStandardError()).trimmed();
    process.kill();
    process.waitForFinished(1000);
    return Error{ProgramError::kFailed,
                 "'" + program.toStdString() + " info --choices' failed: " + why.toStdString()};
  }
  return parse_run_choices(QString::fromUtf8(process.readAllStandardOutput()));
}

}  // namespace vmlab::viz
