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

std::unique_ptr<View> make_offscreen_view(const ViewKind& kind, TraceDocument& document,
                                          ViewLinks& links, QSize size, TimeRange range) {
  std::unique_ptr<View> view(kind.create(document, links, nullptr));
  view->setAttribute(Qt::WA_DontShowOnScreen);
  view->set_tool_bar_visible(false);
  view->resize(size.isEmpty() ? kind.render_size : size);
  view->show();
  if (!range.empty()) {
    document.set_range(range);
    view->show_range(range);
  }
  // Resizes, layouts and polish run as events: let them before drawing.
  QCoreApplication::processEvents();
  view->prepare_for_render();
  QCoreApplication::processEvents();
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
  // Refuse a protected output before spending time on the trace.
  if (auto checked = check_output(QFile::encodeName(request.output).toStdString()); !checked) {
    return checked;
  }
  auto trace = TraceModel::load_file(QFile::encodeName(request.trace).toStdString());
  if (!trace) return trace.error();
  TraceDocument document;
  document.set_trace(std::make_shared<const TraceModel>(std::move(*trace)), request.trace);
  ViewLinks links;
  const auto view = make_offscreen_view(*kind, document, links, request.size, request.range);
  if (auto status = view->render_status(); !status) return status;
  return save_widget_image(
      *view->content(), request.output,
      QStringLiteral("%1 of %2").arg(kind->title, QFileInfo(request.trace).fileName()));
}

}  // namespace vmlab::viz
