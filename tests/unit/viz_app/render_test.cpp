// Pictures: PNG and SVG exports marked as vmlab-viz's and read back, an
// output that holds anything else refused and left as it was, the command
// line's options, and `vmlab-viz --render` as a script runs it.
#include "vmlab/viz/app/render.hpp"

#include <gtest/gtest.h>

#include <QImageReader>
#include <QPainter>
#include <QProcess>
#include <QSvgRenderer>

#include "../../support/scratch_files.hpp"
#include "comparison_sample.hpp"
#include "view_test_support.hpp"
#include "vmlab/trace.hpp"
#include "vmlab/viz/app/command_line.hpp"
#include "vmlab/viz/app/output_file.hpp"
#include "vmlab/viz/app/palette.hpp"
#include "vmlab/viz/app/timeline_view.hpp"

namespace vmlab::viz {
namespace {

using testing::OffscreenView;
using vmlab::testing::contents_of;
using vmlab::testing::ScratchDirectory;
using vmlab::testing::write_file;

QString q(const std::filesystem::path& path) {
  return QString::fromStdString(path.string());
}

TEST(Export, PngAndSvgReadBackAndMayBeReplaced) {
  ScratchDirectory directory("vmlab-viz-export-");
  OffscreenView shown(QStringLiteral("timeline"), QSize(1000, 420));
  QWidget& content = *shown.view->content();
  const auto png = directory / "timeline.png";
  const auto svg = directory / "timeline.svg";
  ASSERT_TRUE(save_widget_image(content, q(png), QStringLiteral("Timeline")).ok());
  ASSERT_TRUE(save_widget_image(content, q(svg), QStringLiteral("Timeline")).ok());

  QImageReader reader(q(png));
  EXPECT_EQ(reader.text(QStringLiteral("Software")), QStringLiteral("vmlab-viz"));
  const QImage image = reader.read();
  ASSERT_EQ(image.size(), QSize(1000, 420));
  auto& canvas = static_cast<TimelineView&>(*shown.view).canvas();
  EXPECT_EQ(
      image.pixel(canvas.x_of(1100), canvas.lane_band(TimelineLane::Vmm).top() + 2) & 0xffffffu,
      palette::reason(EventKind::VmExit, EventReason::IoOut).rgb() & 0xffffffu);

  // The SVG draws the same picture: rendered back, the same span is there.
  QSvgRenderer renderer(q(svg));
  ASSERT_TRUE(renderer.isValid());
  QImage drawn(1000, 420, QImage::Format_RGB32);
  drawn.fill(Qt::white);
  QPainter painter(&drawn);
  renderer.render(&painter);
  painter.end();
  EXPECT_EQ(
      drawn.pixel(canvas.x_of(1100) + 2, canvas.lane_band(TimelineLane::Vmm).top() + 4) & 0xffffffu,
      palette::reason(EventKind::VmExit, EventReason::IoOut).rgb() & 0xffffffu);

  // vmlab-viz's own images may be written again; nothing is left beside them.
  EXPECT_TRUE(save_widget_image(content, q(png), QStringLiteral("Timeline")).ok());
  EXPECT_TRUE(save_widget_image(content, q(svg), QStringLiteral("Timeline")).ok());
  EXPECT_EQ(directory.entries(), (std::vector<std::string>{"timeline.png", "timeline.svg"}));
}

TEST(Export, RefusesWhatVmlabVizDidNotWrite) {
  ScratchDirectory directory("vmlab-viz-export-");
  OffscreenView shown(QStringLiteral("timeline"), QSize(600, 300));
  QWidget& content = *shown.view->content();
  // Someone's PNG (the signature, no vmlab-viz mark), someone's SVG, a text.
  const std::string foreign_png = std::string("\x89PNG\r\n\x1a\n", 8) + "not ours";
  write_file(directory / "photo.png", foreign_png);
  write_file(directory / "drawing.svg",
             "<?xml version=\"1.0\"?>\n<svg><desc>Inkscape</desc></svg>");
  write_file(directory / "notes.svg", "my notes");
  for (const char* name : {"photo.png", "drawing.svg", "notes.svg"}) {
    const std::string before = contents_of(directory / name);
    const Status saved = save_widget_image(content, q(directory / name), QStringLiteral("x"));
    ASSERT_FALSE(saved.ok()) << name;
    EXPECT_EQ(saved.error().kind, VizError::kOutputProtected) << name;
    EXPECT_EQ(contents_of(directory / name), before) << name << " was left as it was";
  }
  // An empty file may be replaced.
  write_file(directory / "empty.png", "");
  EXPECT_TRUE(save_widget_image(content, q(directory / "empty.png"), QStringLiteral("x")).ok());
  // A directory, a missing directory, a format vmlab-viz does not write.
  std::filesystem::create_directory(directory / "folder.png");
  EXPECT_EQ(
      save_widget_image(content, q(directory / "folder.png"), QStringLiteral("x")).error().kind,
      VizError::kOutputNotAFile);
  EXPECT_EQ(save_widget_image(content, q(directory / "absent" / "x.png"), QStringLiteral("x"))
                .error()
                .kind,
            VizError::kOutputUnwritable);
  EXPECT_EQ(save_widget_image(content, q(directory / "x.jpg"), QStringLiteral("x")).error().kind,
            VizError::kUsage);
  EXPECT_EQ(directory.entries(), (std::vector<std::string>{"drawing.svg", "empty.png", "folder.png",
                                                           "notes.svg", "photo.png"}));
}

TEST(Export, KnowsItsOwnImages) {
  std::string png = std::string("\x89PNG\r\n\x1a\n", 8) + "....tEXtSoftware";
  EXPECT_FALSE(written_by_vmlab_viz(png));
  png += '\0';
  png += "vmlab-viz";
  EXPECT_TRUE(written_by_vmlab_viz(png));
  EXPECT_TRUE(
      written_by_vmlab_viz("<?xml version=\"1.0\"?>\n<svg>\n<title>t</title>\n"
                           "<desc>vmlab-viz: Timeline</desc>"));
  EXPECT_FALSE(written_by_vmlab_viz("<?xml version=\"1.0\"?>\n<svg><desc>other</desc>vmlab-viz"));
  EXPECT_FALSE(written_by_vmlab_viz("vmlab-viz"));
  EXPECT_FALSE(written_by_vmlab_viz(""));
}

TEST(CommandLine, TheOptionsAndTheirMistakes) {
  auto window = parse_command_line({QStringLiteral("run.trace")});
  ASSERT_TRUE(window.ok());
  EXPECT_EQ(window->mode, CommandLine::Mode::Window);
  EXPECT_EQ(window->file, QStringLiteral("run.trace"));
  EXPECT_EQ(parse_command_line({})->mode, CommandLine::Mode::Window);

  auto render = parse_command_line({"--render", "reasons", "--output", "r.png", "--size", "800x600",
                                    "--range", "30000-30040.5", "run.trace"});
  ASSERT_TRUE(render.ok()) << render.error().message;
  EXPECT_EQ(render->mode, CommandLine::Mode::Render);
  EXPECT_EQ(render->view, QStringLiteral("reasons"));
  EXPECT_EQ(render->output, QStringLiteral("r.png"));
  EXPECT_EQ(render->size, QSize(800, 600));
  EXPECT_EQ(render->range.start_ns, 30'000'000u);
  EXPECT_EQ(render->range.end_ns, 30'040'500u);

  auto kind = [](const QStringList& arguments) {
    const auto parsed = parse_command_line(arguments);
    return parsed.ok() ? std::error_code() : parsed.error().kind;
  };
  EXPECT_EQ(kind({"--render", "histogram", "--output", "h.png", "t"}), VizError::kUnknownView);
  EXPECT_EQ(kind({"--render", "timeline", "t"}), VizError::kUsage) << "no --output";
  EXPECT_EQ(kind({"--render", "timeline", "--output", "o.png"}), VizError::kUsage) << "no trace";
  EXPECT_EQ(kind({"--render", "timeline", "--output", "o.png", "--size", "big", "t"}),
            VizError::kUsage);
  EXPECT_EQ(kind({"--render", "timeline", "--output", "o.png", "--size", "100x100", "t"}),
            VizError::kUsage);
  EXPECT_EQ(kind({"--render", "timeline", "--output", "o.png", "--range", "40-30", "t"}),
            VizError::kUsage);
  EXPECT_EQ(kind({"--render", "comparison", "--output", "o.png", "--range", "30-40", "r.json"}),
            VizError::kUsage)
      << "a comparison has no run to take a stretch of";
  EXPECT_EQ(kind({"--output", "o.png", "t"}), VizError::kUsage) << "--output without --render";
  EXPECT_EQ(kind({"--frobnicate"}), VizError::kUsage);
  EXPECT_EQ(kind({"a.trace", "b.trace"}), VizError::kUsage);
  EXPECT_EQ(parse_command_line({"--help"})->mode, CommandLine::Mode::Help);
  EXPECT_TRUE(parse_command_line({"--help"})->help.contains(QStringLiteral("--render")));
  EXPECT_EQ(parse_command_line({"--self-test-screenshot", "s.png", "t"})->mode,
            CommandLine::Mode::SelfTest);
}

// `vmlab-viz` as a script runs it: the image, and an exit status per mistake.
class RenderCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    write_file(m_directory / "sample.trace", testing::kSampleTrace);
    write_file(m_directory / "results.json", testing::kSmallComparison);
  }

  int run(const QStringList& arguments, QString* error_output = nullptr) {
    QProcess process;
    QProcessEnvironment environment = QProcessEnvironment::systemEnvironment();
    environment.remove(QStringLiteral("QT_QPA_PLATFORM"));  // --render needs no display
    environment.remove(QStringLiteral("DISPLAY"));
    process.setProcessEnvironment(environment);
    process.start(QStringLiteral(VMLAB_VIZ_PATH), arguments);
    EXPECT_TRUE(process.waitForFinished(60000));
    if (error_output != nullptr)
      *error_output = QString::fromLocal8Bit(process.readAllStandardError());
    return process.exitStatus() == QProcess::NormalExit ? process.exitCode() : -1;
  }
  QString path(const std::string& name) const { return q(m_directory / name); }

  ScratchDirectory m_directory{"vmlab-viz-render-"};
};

TEST_F(RenderCommand, DrawsEachViewWithoutADisplay) {
  for (const ViewKind& kind : view_kinds()) {
    const QString& name = kind.name;
    const QString output = path(name.toStdString() + ".png");
    const QString input =
        kind.input() == InputKind::Trace ? path("sample.trace") : path("results.json");
    QString errors;
    ASSERT_EQ(run({"--render", name, "--output", output, "--size", "900x500", input}, &errors), 0)
        << errors.toStdString();
    EXPECT_TRUE(errors.isEmpty()) << "nothing but the image: " << errors.toStdString();
    const QImage image(output);
    EXPECT_EQ(image.size(), QSize(900, 500)) << name.toStdString();
  }
  // A stretch of the run.
  ASSERT_EQ(run({"--render", "timeline", "--range", "0.9-2", "--output", path("part.svg"),
                 path("sample.trace")}),
            0);
  EXPECT_TRUE(QSvgRenderer(path("part.svg")).isValid());
}

TEST_F(RenderCommand, DrawsTheGraphViews) {
  // The transition graph and how the mode works, at their own sizes, as
  // PNG and as SVG: Graphviz lays them out without a display too.
  for (const char* name : {"graph", "mode"}) {
    const ViewKind* kind = find_view_kind(QString::fromLatin1(name));
    ASSERT_NE(kind, nullptr) << name;
    QString errors;
    const QString png = path(std::string(name) + ".png");
    ASSERT_EQ(run({"--render", name, "--output", png, path("sample.trace")}, &errors), 0)
        << errors.toStdString();
    EXPECT_TRUE(errors.isEmpty()) << errors.toStdString();
    const QImage image = QImage(png).convertToFormat(QImage::Format_RGB32);
    EXPECT_EQ(image.size(), kind->render_size) << name;
    int monitor = 0;
    const QRgb band = palette::lane_band(TimelineLane::Monitor).rgb() & 0xffffffu;
    for (int y = 0; y < image.height(); ++y) {
      for (int x = 0; x < image.width(); ++x)
        monitor += (image.pixel(x, y) & 0xffffffu) == band ? 1 : 0;
    }
    EXPECT_GT(monitor, 1000) << name << ": the monitor's node is drawn";
    const QString svg = path(std::string(name) + ".svg");
    ASSERT_EQ(run({"--render", name, "--output", svg, path("sample.trace")}), 0);
    EXPECT_TRUE(QSvgRenderer(svg).isValid()) << name;
  }
}

TEST_F(RenderCommand, ClearErrorsAndExitStatuses) {
  QString errors;
  EXPECT_EQ(run({"--render", "charts", "--output", path("x.png"), path("sample.trace")}, &errors),
            viz_exit::kUsage);
  EXPECT_TRUE(errors.contains(QStringLiteral("timeline, reasons"))) << "the views are listed";
  EXPECT_EQ(run({"--render", "timeline", "--output", path("x.png"), path("absent.trace")}, &errors),
            viz_exit::kNoTrace);
  EXPECT_TRUE(errors.contains(QStringLiteral("absent.trace"))) << errors.toStdString();
  write_file(m_directory / "bad.trace", "# vmlab-trace 2\n# events: 1 recorded, 0 dropped\n1\t2\n");
  EXPECT_EQ(run({"--render", "timeline", "--output", path("x.png"), path("bad.trace")}, &errors),
            viz_exit::kBadTrace);
  EXPECT_TRUE(errors.contains(QStringLiteral("line 3"))) << errors.toStdString();
  write_file(m_directory / "precious.png", "a photo");
  EXPECT_EQ(run({"--render", "timeline", "--output", path("precious.png"), path("sample.trace")},
                &errors),
            viz_exit::kCantCreate);
  EXPECT_EQ(contents_of(m_directory / "precious.png"), "a photo");
  EXPECT_EQ(run({"--render", "timeline", "--output", path("absent/x.png"), path("sample.trace")}),
            viz_exit::kCantCreate);
  EXPECT_FALSE(std::filesystem::exists(m_directory / "x.png"));
}

TEST_F(RenderCommand, AComparisonAndTheMistakesAboutIt) {
  QString errors;
  ASSERT_EQ(
      run({"--render", "comparison", "--output", path("comparison.png"), path("results.json")},
          &errors),
      0)
      << errors.toStdString();
  QImageReader reader(path("comparison.png"));
  EXPECT_EQ(reader.text(QStringLiteral("Title")), QStringLiteral("Comparison of results.json"));
  EXPECT_EQ(reader.read().size(), find_view_kind(QStringLiteral("comparison"))->render_size);

  // A view of the other kind of file: a usage error that says which draws it.
  EXPECT_EQ(run({"--render", "timeline", "--output", path("x.png"), path("results.json")}, &errors),
            viz_exit::kUsage);
  EXPECT_TRUE(
      errors.contains(QStringLiteral("--render timeline draws a trace (vmlab run --trace), "
                                     "but ")))
      << errors.toStdString();
  EXPECT_TRUE(errors.contains(QStringLiteral("the views that draw it: comparison")))
      << errors.toStdString();
  EXPECT_EQ(
      run({"--render", "comparison", "--output", path("x.png"), path("sample.trace")}, &errors),
      viz_exit::kUsage);
  EXPECT_TRUE(errors.contains(QStringLiteral("--render comparison draws a comparison")))
      << errors.toStdString();

  // A malformed file names its field; a cut one says where JSON stopped.
  std::string bad = testing::kSmallComparison;
  bad.replace(bad.find("\"ok\": true"), 10, "\"ok\": 1");
  write_file(m_directory / "bad.json", bad);
  EXPECT_EQ(run({"--render", "comparison", "--output", path("x.png"), path("bad.json")}, &errors),
            viz_exit::kBadTrace);
  EXPECT_TRUE(
      errors.contains(QStringLiteral("bad.json: rows[0].ok: should be true or false, not a "
                                     "whole number")))
      << errors.toStdString();
  write_file(m_directory / "cut.json", std::string(testing::kSmallComparison).substr(0, 300));
  EXPECT_EQ(run({"--render", "comparison", "--output", path("x.png"), path("cut.json")}, &errors),
            viz_exit::kBadTrace);
  EXPECT_TRUE(errors.contains(QStringLiteral("cut.json: not a JSON document: parse error at line")))
      << errors.toStdString();
  EXPECT_EQ(
      run({"--render", "comparison", "--output", path("x.png"), path("absent.json")}, &errors),
      viz_exit::kNoTrace);
  EXPECT_TRUE(errors.contains(QStringLiteral("absent.json"))) << errors.toStdString();
  EXPECT_FALSE(std::filesystem::exists(m_directory / "x.png"));
}

}  // namespace
}  // namespace vmlab::viz
