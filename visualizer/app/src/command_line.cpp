#include "vmlab/viz/app/command_line.hpp"

#include <QCommandLineParser>
#include <QRegularExpression>

#include "vmlab/trace.hpp"
#include "vmlab/viz/app/output_file.hpp"
#include "vmlab/viz/app/view.hpp"
#include "vmlab/viz/comparison.hpp"

namespace vmlab::viz {

namespace {

constexpr int kSmallestSide = 200;
constexpr int kLargestSide = 8000;

Error usage(const std::string& why) {
  return Error{VizError::kUsage, why};
}

// "30000-30040.5": microseconds, to the nanosecond.
Result<TimeRange> parse_microsecond_range(const QString& text) {
  static const QRegularExpression kRange(
      QStringLiteral("^\\s*(\\d{1,12}(?:\\.\\d{1,3})?)\\s*-\\s*(\\d{1,12}(?:\\.\\d{1,3})?)\\s*$"));
  const auto match = kRange.match(text);
  auto nanoseconds = [](const QString& figure) {
    const qsizetype point = figure.indexOf(QLatin1Char('.'));
    const QString whole = point < 0 ? figure : figure.left(point);
    QString fraction = point < 0 ? QString() : figure.mid(point + 1);
    while (fraction.size() < 3)
      fraction += QLatin1Char('0');
    return whole.toULongLong() * 1000 + fraction.toULongLong();
  };
  if (match.hasMatch()) {
    const TimeRange range{nanoseconds(match.captured(1)), nanoseconds(match.captured(2))};
    if (!range.empty()) return range;
  }
  return usage("--range '" + text.toStdString() +
               "' should be FROM-TO in microseconds, FROM below TO (30000-30040.5)");
}

}  // namespace

Result<CommandLine> parse_command_line(const QStringList& arguments) {
  QCommandLineParser parser;
  parser.setApplicationDescription(
      QStringLiteral("vmlab-viz: the VM exits, monitor traps and changes of privilege level of a "
                     "vmlab trace (vmlab run --trace FILE), the results of vmlab compare "
                     "--json FILE, and a recorded run beside other platforms' predictions "
                     "(vmlab simulate --json FILE)."));
  const QCommandLineOption help({QStringLiteral("h"), QStringLiteral("help")},
                                QStringLiteral("Print this help and exit."));
  const QCommandLineOption version(QStringLiteral("version"),
                                   QStringLiteral("Print vmlab-viz's version and exit."));
  const QCommandLineOption render(
      QStringLiteral("render"),
      QStringLiteral(
          "Draw VIEW off screen into --output and exit, without a window. Views: %1 "
          "(comparison draws a vmlab compare or vmlab simulate --json file, the others a "
          "trace).")
          .arg(view_kind_names().join(QStringLiteral(", "))),
      QStringLiteral("VIEW"));
  const QCommandLineOption output(
      QStringLiteral("output"),
      QStringLiteral("The image --render writes (.png or .svg). An existing file is replaced "
                     "only if it is empty or an image vmlab-viz wrote."),
      QStringLiteral("FILE"));
  const QCommandLineOption size(QStringLiteral("size"),
                                QStringLiteral("The image's size for --render, e.g. 1400x520."),
                                QStringLiteral("WxH"));
  const QCommandLineOption range(
      QStringLiteral("range"),
      QStringLiteral("Draw (timeline) or count (the other views) only FROM to TO microseconds "
                     "of the run, e.g. 30000-30040."),
      QStringLiteral("FROM-TO"));
  QCommandLineOption self_test(
      QStringLiteral("self-test-screenshot"),
      QStringLiteral("Test the window: open TRACE, zoom, save a screenshot to FILE, exit."),
      QStringLiteral("FILE"));
  self_test.setFlags(QCommandLineOption::HiddenFromHelp);
  parser.addOptions({help, version, render, output, size, range, self_test});
  parser.addPositionalArgument(
      QStringLiteral("FILE"),
      QStringLiteral("The trace (vmlab run --trace) or comparison (vmlab compare --json, or "
                     "vmlab simulate --json) to open, told apart by what it holds."));

  CommandLine command;
  command.help = parser.helpText();
  if (!parser.parse(QStringList{QStringLiteral("vmlab-viz")} + arguments)) {
    return usage(parser.errorText().toStdString());
  }
  if (parser.isSet(help)) {
    command.mode = CommandLine::Mode::Help;
    return command;
  }
  if (parser.isSet(version)) {
    command.mode = CommandLine::Mode::Version;
    return command;
  }
  const QStringList positional = parser.positionalArguments();
  if (positional.size() > 1)
    return usage("give one file, not " + std::to_string(positional.size()));
  command.file = positional.value(0);

  if (parser.isSet(render) && parser.isSet(self_test)) {
    return usage("--render and --self-test-screenshot do not go together");
  }
  if (parser.isSet(render)) {
    command.mode = CommandLine::Mode::Render;
    command.view = parser.value(render);
    if (find_view_kind(command.view) == nullptr) {
      return Error{VizError::kUnknownView,
                   "--render '" + command.view.toStdString() + "' is not a view; the views are " +
                       view_kind_names().join(QStringLiteral(", ")).toStdString()};
    }
    if (!parser.isSet(output)) return usage("--render needs --output FILE.png (or .svg)");
    command.output = parser.value(output);
    if (command.file.isEmpty()) {
      return usage(
          "--render needs a file to draw: a trace, or for --render comparison what "
          "vmlab compare --json wrote");
    }
    if (parser.isSet(size)) {
      static const QRegularExpression kSize(QStringLiteral("^(\\d{1,5})x(\\d{1,5})$"));
      const auto match = kSize.match(parser.value(size));
      const int width = match.hasMatch() ? match.captured(1).toInt() : 0;
      const int height = match.hasMatch() ? match.captured(2).toInt() : 0;
      if (width < kSmallestSide || height < kSmallestSide || width > kLargestSide ||
          height > kLargestSide) {
        return usage("--size '" + parser.value(size).toStdString() + "' should be WIDTHxHEIGHT, " +
                     std::to_string(kSmallestSide) + " to " + std::to_string(kLargestSide) +
                     " pixels each (1400x520)");
      }
      command.size = QSize(width, height);
    }
    if (parser.isSet(range)) {
      if (find_view_kind(command.view)->input() != InputKind::Trace) {
        return usage("--range is a stretch of a trace's run; --render " +
                     command.view.toStdString() + " draws no run");
      }
      auto parsed = parse_microsecond_range(parser.value(range));
      if (!parsed) return parsed.error();
      command.range = *parsed;
    }
    return command;
  }
  if (parser.isSet(output) || parser.isSet(size) || parser.isSet(range)) {
    return usage("--output, --size and --range go with --render VIEW");
  }
  if (parser.isSet(self_test)) {
    command.mode = CommandLine::Mode::SelfTest;
    command.output = parser.value(self_test);
    if (command.file.isEmpty()) return usage("--self-test-screenshot needs a trace to open");
  }
  return command;
}

int exit_status_of(const Error& error) {
  if (error.kind == TraceError::kUnreadable || error.kind == ComparisonError::kUnreadable) {
    return viz_exit::kNoTrace;
  }
  if (error.kind.category() == make_error_code(TraceError::kUnreadable).category() ||
      error.kind.category() == make_error_code(ComparisonError::kUnreadable).category()) {
    return viz_exit::kBadTrace;
  }
  if (error.kind == VizError::kUsage || error.kind == VizError::kUnknownView) {
    return viz_exit::kUsage;
  }
  if (error.kind == VizError::kOutputNotAFile || error.kind == VizError::kOutputProtected ||
      error.kind == VizError::kOutputUnwritable || error.kind == VizError::kRenderFailed) {
    return viz_exit::kCantCreate;
  }
  return viz_exit::kSoftware;
}

}  // namespace vmlab::viz
