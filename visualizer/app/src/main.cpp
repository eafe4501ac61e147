// vmlab-viz: the window, or a headless render (command_line.hpp).
#include <QApplication>
#include <QTimer>
#include <cstdio>
#include <exception>

#include "vmlab/viz/app/command_line.hpp"
#include "vmlab/viz/app/main_window.hpp"
#include "vmlab/viz/app/render.hpp"
#include "vmlab/viz/app/self_test.hpp"

namespace {

// Qt's notes that say nothing to a user of vmlab-viz: the offscreen
// platform cannot pass size hints to a window manager it does not have,
// and a root shell has no XDG_RUNTIME_DIR. Everything else Qt says passes.
QtMessageHandler g_default_handler = nullptr;
void filter_messages(QtMsgType type, const QMessageLogContext& context, const QString& message) {
  if (message.contains(QLatin1String("does not support propagateSizeHints")) ||
      message.startsWith(QLatin1String("QStandardPaths: XDG_RUNTIME_DIR not set"))) {
    return;
  }
  g_default_handler(type, context, message);
}

int run(int argc, char** argv) {
  using namespace vmlab::viz;
  QStringList arguments;
  for (int index = 1; index < argc; ++index)
    arguments << QString::fromLocal8Bit(argv[index]);
  auto command = parse_command_line(arguments);
  if (!command) {
    std::fprintf(stderr, "vmlab-viz: %s\n(vmlab-viz --help lists the options)\n",
                 command.error().message.c_str());
    return viz_exit::kUsage;
  }
  switch (command->mode) {
    case CommandLine::Mode::Help:
      std::fputs(qPrintable(command->help), stdout);
      return 0;
    case CommandLine::Mode::Version:
      std::puts("vmlab-viz " VMLAB_VERSION);
      return 0;
    case CommandLine::Mode::Render:
      // No display needed to draw into an image.
      if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
      break;
    case CommandLine::Mode::Window:
    case CommandLine::Mode::SelfTest:
      break;
  }
  g_default_handler = qInstallMessageHandler(filter_messages);
  QApplication application(argc, argv);
  QApplication::setApplicationName(QStringLiteral("vmlab-viz"));
  QApplication::setOrganizationName(QStringLiteral("vmlab"));
  QApplication::setApplicationVersion(QStringLiteral(VMLAB_VERSION));
  switch (command->mode) {
    case CommandLine::Mode::Render: {
      const vmlab::Status rendered = render_to_file({.view = command->view,
                                                     .file = command->file,
                                                     .output = command->output,
                                                     .size = command->size,
                                                     .range = command->range});
      if (!rendered) {
        std::fprintf(stderr, "vmlab-viz: %s\n", rendered.error().message.c_str());
        return exit_status_of(rendered.error());
      }
      return 0;
    }
    case CommandLine::Mode::SelfTest:
      return run_self_test(command->file, command->output);
    case CommandLine::Mode::Window:
    case CommandLine::Mode::Help:
    case CommandLine::Mode::Version:
      break;
  }
  MainWindow window;
  window.show();
  if (!command->file.isEmpty()) {
    const QString file = command->file;
    QTimer::singleShot(0, &window, [&window, file] { window.open_file(file); });
  }
  return QApplication::exec();
}

}  // namespace

int main(int argc, char** argv) {
  // Library code reports errors as values; what can still throw is the
  // standard library running out of memory. Say so instead of aborting.
  try {
    return run(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "vmlab-viz: internal error: %s\n", error.what());
    return vmlab::viz::viz_exit::kSoftware;
  }
}
