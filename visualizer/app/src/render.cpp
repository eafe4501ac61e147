#include "vmlab/viz/app/render.hpp"

#include <QCoreApplication>
#include <QFile>
#include <QFileInfo>
#include <QPainter>
#include <QSvgGenerator>

#include "vmlab/viz/app/output_file.hpp"
#include "vmlab/viz/models/text.hpp"

namespace vmlab::viz {

namespace {

const QString kSoftware = to_qstring(kSoftwareName);

}  // namespace

Result<ImageFormat> image_format_of(const QString& path) {
  if (path.endsWith(QLatin1String(".png"), Qt::CaseInsensitive)) return ImageFormat::Png;
  if (path.endsWith(QLatin1String(".svg"), Qt::CaseInsensitive)) return ImageFormat::Svg;
  return Error{VizError::kUsage, "--output '" + path.toStdString() +
                                     "' should end in .png or .svg (the image's format)"};
}

QImage grab_image(QWidget& widget) {
  QImage image = widget.grab().toImage();
  image.setText(QStringLiteral("Software"), kSoftware);
  return image;
}

Status save_widget_image(QWidget& widget, const QString& path, const QString& title) {
  auto format = image_format_of(path);
  if (!format) return format.error();
  return write_output(QFile::encodeName(path).toStdString(), [&](const QString& temporary) {
    if (*format == ImageFormat::Png) {
      QImage image = grab_image(widget);
      image.setText(QStringLiteral("Title"), title);
      return image.save(temporary, "PNG");
    }
    QSvgGenerator svg;
    svg.setFileName(temporary);
    svg.setSize(widget.size());
    svg.setViewBox(QRect(QPoint(0, 0), widget.size()));
    svg.setTitle(title);
    // output_file.hpp knows vmlab-viz's SVGs by this.
    svg.setDescription(QStringLiteral("%1: %2").arg(kSoftware, title));
    QPainter painter;
    if (!painter.begin(&svg)) return false;
    widget.render(&painter);
    return painter.end();
  });
}

namespace {

// Off screen, at `size`, laid out as it would be on screen.
void show_offscreen(ViewBase& view, const ViewKind& kind, QSize size) {
  view.setAttribute(Qt::WA_DontShowOnScreen);
  view.set_tool_bar_visible(false);
  view.resize(size.isEmpty() ? kind.render_size : size);
  view.show();
}

// Resizes, layouts and polish run as events: let them before drawing.
void settle(ViewBase& view) {
  QCoreApplication::processEvents();
  view.prepare_for_render();
  QCoreApplication::processEvents();
}

QString views_drawing(InputKind input) {
  QStringList names;
  for (const ViewKind& kind : view_kinds()) {
    if (kind.input() == input) names << kind.name;
  }
  return names.join(QStringLiteral(", "));
}

}  // namespace

std::unique_ptr<View> make_offscreen_view(const ViewKind& kind, TraceDocument& document,
                                          ViewLinks& links, QSize size, TimeRange range) {
  const auto* create = std::get_if<ViewKind::TraceViewFactory>(&kind.create);
  if (create == nullptr) return nullptr;
  std::unique_ptr<View> view((*create)(document, links, nullptr));
  show_offscreen(*view, kind, size);
  if (!range.empty()) {
    document.set_range(range);
    view->show_range(range);
  }
  settle(*view);
  return view;
}

std::unique_ptr<ViewBase> make_offscreen_view(const ViewKind& kind, ComparisonDocument& document,
                                              QSize size) {
  const auto* create = std::get_if<ViewKind::ComparisonViewFactory>(&kind.create);
  if (create == nullptr) return nullptr;
  std::unique_ptr<ViewBase> view((*create)(document, nullptr));
  show_offscreen(*view, kind, size);
  settle(*view);
  return view;
}

Status render_to_file(const RenderRequest& request) {
  const ViewKind* kind = find_view_kind(request.view);
  if (kind == nullptr) {
    return Error{VizError::kUnknownView, "--render '" + request.view.toStdString() +
                                             "' is not a view; the views are " +
                                             view_kind_names().join(", ").toStdString()};
  }
  auto format = image_format_of(request.output);
  if (!format) return format.error();
  // Refuse a protected output before spending time on the input.
  if (auto checked = check_output(QFile::encodeName(request.output).toStdString()); !checked) {
    return checked;
  }
  const InputKind given = input_kind_of_file(request.file);
  if (given != kind->input()) {
    return Error{VizError::kUsage,
                 QStringLiteral("--render %1 draws %2, but %3 is %4; the views that draw it: %5")
                     .arg(kind->name, input_kind_text(kind->input()), request.file,
                          input_kind_text(given), views_drawing(given))
                     .toStdString()};
  }
  const QString title =
      QStringLiteral("%1 of %2").arg(kind->title, QFileInfo(request.file).fileName());
  if (kind->input() == InputKind::Comparison) {
    ComparisonDocument document;
    if (auto loaded = document.load_file(request.file); !loaded) return loaded;
    const auto view = make_offscreen_view(*kind, document, request.size);
    if (auto status = view->render_status(); !status) return status;
    return save_widget_image(*view->content(), request.output, title);
  }
  auto trace = TraceModel::load_file(QFile::encodeName(request.file).toStdString());
  if (!trace) return trace.error();
  TraceDocument document;
  document.set_trace(std::make_shared<const TraceModel>(std::move(*trace)), request.file);
  ViewLinks links;
  const auto view = make_offscreen_view(*kind, document, links, request.size, request.range);
  if (auto status = view->render_status(); !status) return status;
  return save_widget_image(*view->content(), request.output, title);
}

}  // namespace vmlab::viz
