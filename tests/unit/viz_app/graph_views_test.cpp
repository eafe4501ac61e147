// The Graphviz views drawn off screen from the hand-written trace: the
// transition graph's SVG has a node per level seen and an edge per change
// with its count, follows the selection and is no blank picture; how the
// mode works differs between full and hvm and lights up, in the SVG and in
// the pixels, the edges the event picked in the event list travelled.
// Graphviz's own errors come back as errors.
#include "vmlab/viz/app/graph_views.hpp"

#include <gtest/gtest.h>

#include <QPainter>
#include <QSvgRenderer>
#include <QXmlStreamReader>
#include <map>
#include <thread>

#include "../../support/scratch_files.hpp"
#include "view_test_support.hpp"
#include "vmlab/viz/app/graphviz.hpp"
#include "vmlab/viz/app/output_file.hpp"
#include "vmlab/viz/app/palette.hpp"
#include "vmlab/viz/app/render.hpp"

namespace vmlab::viz {
namespace {

using testing::OffscreenView;
using testing::rgb_at;

// A node or edge of a Graphviz SVG: its texts and the colours it is drawn in.
struct SvgElement {
  QString kind;  // "node" or "edge"
  QStringList texts;
  QStringList strokes;
};

// Graphviz writes each node and edge as <g id="ID" class="node|edge">.
std::map<QString, SvgElement> svg_elements(const QByteArray& svg) {
  std::map<QString, SvgElement> elements;
  QXmlStreamReader reader(svg);
  QString current;
  while (!reader.atEnd()) {
    reader.readNext();
    if (reader.isStartElement()) {
      const auto attributes = reader.attributes();
      if (reader.name() == QLatin1String("g")) {
        const QString kind = attributes.value(QLatin1String("class")).toString();
        if (kind == QLatin1String("node") || kind == QLatin1String("edge")) {
          current = attributes.value(QLatin1String("id")).toString();
          elements[current].kind = kind;
        }
      } else if (!current.isEmpty() && reader.name() == QLatin1String("text")) {
        elements[current].texts << reader.readElementText().trimmed();
      } else if (!current.isEmpty() && attributes.hasAttribute(QLatin1String("stroke"))) {
        elements[current].strokes << attributes.value(QLatin1String("stroke")).toString();
      }
    } else if (reader.isEndElement() && reader.name() == QLatin1String("g")) {
      current.clear();
    }
  }
  EXPECT_FALSE(reader.hasError()) << reader.errorString().toStdString();
  return elements;
}

QString q(const std::string& text) {
  return QString::fromStdString(text);
}

// Pixels of `colour` in `image`.
int pixels_of(const QImage& image, const QColor& colour) {
  int count = 0;
  for (int y = 0; y < image.height(); ++y) {
    for (int x = 0; x < image.width(); ++x)
      count += rgb_at(image, x, y) == (colour.rgb() & 0xffffffu) ? 1 : 0;
  }
  return count;
}

std::shared_ptr<const TraceModel> trace_with_run(const std::string& run) {
  std::string text = testing::kSampleTrace;
  const std::string full = "# run: cpu=full";
  text.replace(text.find(full), full.size(), "# run: " + run);
  return std::make_shared<const TraceModel>(testing::load_text(text));
}

TEST(TransitionGraphView, ANodePerLevelAndAnEdgePerChangeInTheSvg) {
  OffscreenView shown(QStringLiteral("graph"), QSize(1000, 760));
  auto& view = static_cast<TransitionGraphView&>(*shown.view);
  ASSERT_TRUE(view.render_status().ok()) << view.render_status().error().message;
  const auto elements = svg_elements(view.picture().svg());
  for (const TimelineLane lane :
       {TimelineLane::Vmm, TimelineLane::Monitor, TimelineLane::GuestKernel,
        TimelineLane::GuestUser, TimelineLane::Halted}) {
    const auto node = elements.find(q(level_node_id(lane)));
    ASSERT_NE(node, elements.end()) << lane_name(lane);
    EXPECT_EQ(node->second.kind, QStringLiteral("node"));
  }
  const auto node = elements.at(q(level_node_id(TimelineLane::GuestKernel)));
  EXPECT_EQ(node.texts, (QStringList{"Guest kernel", "2.30 µs"}));
  const auto edge =
      elements.find(q(transition_edge_id(TimelineLane::GuestKernel, TimelineLane::Monitor)));
  ASSERT_NE(edge, elements.end());
  EXPECT_EQ(edge->second.texts, QStringList{QStringLiteral("2× · 1.10 µs")});
  int edges = 0;
  for (const auto& [id, element] : elements)
    edges += element.kind == QLatin1String("edge") ? 1 : 0;
  EXPECT_EQ(edges, 9);
  EXPECT_TRUE(view.title().contains(QStringLiteral("Whole run: 11 changes of level")))
      << view.title().toStdString();

  // Drawn, not blank: the levels' fills are in the picture, and its text.
  const QImage image = shown.image();
  ASSERT_EQ(image.size(), QSize(1000, 760));
  const QRectF drawn = view.picture().picture_rect();
  EXPECT_GT(drawn.width(), 300) << "scaled to the view";
  for (const TimelineLane lane : {TimelineLane::Vmm, TimelineLane::Monitor,
                                  TimelineLane::GuestKernel, TimelineLane::GuestUser}) {
    EXPECT_GT(pixels_of(image, palette::lane_band(lane)), 500) << lane_name(lane);
  }
  EXPECT_GT(pixels_of(image, palette::connector()), 200) << "edges and labels";
}

TEST(TransitionGraphView, FollowsTheSelection) {
  OffscreenView shown(QStringLiteral("graph"), QSize(1000, 760));
  auto& view = static_cast<TransitionGraphView&>(*shown.view);
  const QImage whole = shown.image();
  shown.document.set_range({3000, 4300});
  const auto elements = svg_elements(view.picture().svg());
  EXPECT_EQ(elements.count(q(transition_edge_id(TimelineLane::GuestUser, TimelineLane::Monitor))),
            0u);
  EXPECT_EQ(
      elements.at(q(transition_edge_id(TimelineLane::GuestKernel, TimelineLane::Monitor))).texts,
      QStringList{QStringLiteral("2× · 800 ns")});
  EXPECT_EQ(elements.at(q(level_node_id(TimelineLane::GuestUser))).texts,
            (QStringList{"Guest user", "not seen"}));
  EXPECT_TRUE(view.title().startsWith(QStringLiteral("Selection 3.000 to 4.300 µs: 3 changes")))
      << view.title().toStdString();
  EXPECT_EQ(pixels_of(shown.image(), palette::lane_band(TimelineLane::GuestUser)), 0)
      << "a level not seen has no fill";
  EXPECT_NE(shown.image(), whole);
  shown.document.clear_range();
  EXPECT_EQ(svg_elements(view.picture().svg())
                .count(q(transition_edge_id(TimelineLane::GuestUser, TimelineLane::Monitor))),
            1u);
  EXPECT_TRUE(view.title().startsWith(QStringLiteral("Whole run")));
}

TEST(ModeView, FullAndHvmAreDrawnDifferently) {
  OffscreenView full(QStringLiteral("mode"), QSize(1500, 900));
  OffscreenView hvm(QStringLiteral("mode"), QSize(1500, 900), trace_with_run("cpu=hvm"));
  auto& full_view = static_cast<ModeView&>(*full.view);
  auto& hvm_view = static_cast<ModeView&>(*hvm.view);
  ASSERT_TRUE(full_view.render_status().ok()) << full_view.render_status().error().message;
  ASSERT_TRUE(hvm_view.render_status().ok()) << hvm_view.render_status().error().message;
  EXPECT_EQ(full_view.technique(), Technique::Full);
  EXPECT_EQ(hvm_view.technique(), Technique::Hvm);
  const auto full_svg = svg_elements(full_view.mode_picture().svg());
  const auto hvm_svg = svg_elements(hvm_view.mode_picture().svg());
  EXPECT_EQ(full_svg.count(QStringLiteral("monitor-stubs")), 1u);
  EXPECT_EQ(full_svg.count(QStringLiteral("monitor-logic")), 1u);
  EXPECT_EQ(hvm_svg.count(QStringLiteral("monitor-stubs")), 0u);
  EXPECT_EQ(hvm_svg.count(QStringLiteral("path-guest-user-guest-kernel")), 1u);
  EXPECT_EQ(full_svg.count(QStringLiteral("path-guest-user-guest-kernel")), 0u);
  EXPECT_TRUE(
      full_view.caption().startsWith(QStringLiteral("full (trap-and-emulate). A user "
                                                    "system call is two traps")))
      << full_view.caption().toStdString();
  EXPECT_TRUE(hvm_view.caption().startsWith(QStringLiteral("hvm (hardware-assisted).")));
  // The hypervisor models beside both.
  EXPECT_EQ(svg_elements(full_view.models_picture().svg()).count(QStringLiteral("type-2")), 1u);
  const QImage full_image = full.image();
  const QImage hvm_image = hvm.image();
  EXPECT_NE(full_image, hvm_image);
  EXPECT_GT(pixels_of(full_image, palette::lane_band(TimelineLane::Monitor)),
            pixels_of(hvm_image, palette::lane_band(TimelineLane::Monitor)) + 2000)
      << "the stubs and the monitor logic take the monitor's colour";
  EXPECT_EQ(pixels_of(full_image, palette::highlight()), 0) << "nothing picked";
}

TEST(ModeView, ThePickedEventsWayIsHighlighted) {
  OffscreenView shown(QStringLiteral("mode"), QSize(1500, 900));
  auto& view = static_cast<ModeView&>(*shown.view);
  // Event 1: the user's syscall, a monitor trap user -> kernel.
  emit shown.links.event_requested(1);
  ASSERT_TRUE(view.render_status().ok());
  const QStringList way = {
      "path-guest-user-monitor-stubs", "path-monitor-stubs-kvm", "path-kvm-run-loop",
      "path-run-loop-monitor-logic",   "path-monitor-logic-kvm", "path-kvm-guest-kernel"};
  const QString highlight = palette::highlight().name();
  const auto elements = svg_elements(view.mode_picture().svg());
  int edges = 0;
  for (const auto& [id, element] : elements) {
    if (element.kind != QLatin1String("edge")) continue;
    ++edges;
    EXPECT_EQ(element.strokes.contains(highlight), way.contains(id)) << id.toStdString();
  }
  EXPECT_GT(edges, way.size());
  EXPECT_TRUE(view.caption().contains(
      QStringLiteral("guest user → monitor stub → KVM → run loop → monitor → KVM → guest kernel")))
      << view.caption().toStdString();
  EXPECT_TRUE(view.caption().contains(QStringLiteral("The event at 1.200 µs")));
  EXPECT_GT(pixels_of(shown.image(), palette::highlight()), 500) << "drawn in the picture";

  // An exit from user code to a device, clicked in the timeline: another way.
  emit shown.links.event_picked(6);
  const auto device = svg_elements(view.mode_picture().svg());
  EXPECT_TRUE(device.at(QStringLiteral("path-run-loop-devices")).strokes.contains(highlight));
  EXPECT_FALSE(
      device.at(QStringLiteral("path-guest-user-monitor-stubs")).strokes.contains(highlight));

  // A new trace forgets the event.
  shown.document.set_trace(testing::sample_trace(), QStringLiteral("again.trace"));
  EXPECT_EQ(pixels_of(shown.image(), palette::highlight()), 0);
  EXPECT_TRUE(view.caption().contains(QStringLiteral("two traps")));
}

TEST(ModeView, ARunWithNoTechniqueItKnows) {
  OffscreenView shown(QStringLiteral("mode"), QSize(1200, 800),
                      trace_with_run("cpu=mix workload=synthetic"));
  auto& view = static_cast<ModeView&>(*shown.view);
  EXPECT_EQ(view.technique(), std::nullopt);
  EXPECT_TRUE(view.mode_picture().svg().isEmpty());
  EXPECT_TRUE(view.caption().contains(QStringLiteral("cpu=mix workload=synthetic")))
      << view.caption().toStdString();
  EXPECT_FALSE(view.models_picture().svg().isEmpty()) << "the models need no trace";
  EXPECT_TRUE(view.render_status().ok());
}

TEST(ModeView, ExportsAsSvg) {
  vmlab::testing::ScratchDirectory directory("vmlab-viz-mode-");
  OffscreenView shown(QStringLiteral("mode"), QSize(1200, 800));
  const auto path = directory / "mode.svg";
  ASSERT_TRUE(
      save_widget_image(*shown.view->content(), q(path.string()), QStringLiteral("Mode")).ok());
  // Vector all the way (Graphviz's SVG drawn into Qt's), and the same picture.
  QSvgRenderer renderer(q(path.string()));
  ASSERT_TRUE(renderer.isValid());
  QImage drawn(1200, 800, QImage::Format_RGB32);
  drawn.fill(Qt::white);
  QPainter painter(&drawn);
  renderer.render(&painter);
  painter.end();
  EXPECT_GT(pixels_of(drawn, palette::lane_band(TimelineLane::Monitor)), 2000);
  EXPECT_GT(pixels_of(drawn, palette::lane_band(TimelineLane::GuestKernel)), 1000);
}

TEST(Graphviz, ItsErrorsComeBackAsErrors) {
  const auto bad = layout_svg("digraph broken {\n  a -> ;\n}\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().kind, VizError::kRenderFailed);
  EXPECT_NE(bad.error().message.find("could not read the graph's DOT text"), std::string::npos)
      << bad.error().message;
  // Graphviz's own words: the error and where (its line count is its own).
  EXPECT_NE(bad.error().message.find("syntax error in line"), std::string::npos)
      << bad.error().message;
  // The next graph is fine again.
  const auto good = layout_svg("digraph fine { a -> b; }");
  ASSERT_TRUE(good.ok()) << good.error().message;
  EXPECT_TRUE(good->contains("<svg"));

  // libgvc is not thread-safe: another thread is refused.
  std::optional<Result<QByteArray>> elsewhere;
  std::thread([&] { elsewhere = layout_svg("digraph x { a; }"); }).join();
  ASSERT_TRUE(elsewhere.has_value());
  ASSERT_FALSE(elsewhere->ok());
  EXPECT_NE(elsewhere->error().message.find("GUI thread"), std::string::npos);
}

}  // namespace
}  // namespace vmlab::viz
