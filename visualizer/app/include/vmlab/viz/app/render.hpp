// Pictures of views: exported from the window (File > Export) and made
// headless by `vmlab-viz --render VIEW --output FILE INPUT` for scripts and
// the README, INPUT a trace or, for the comparison view, a `vmlab compare
// --json` file. PNG through QWidget::grab, SVG through QSvgGenerator
// (vector: each span a rectangle, each figure text). Both are marked as
// vmlab-viz's (output_file.hpp), so rendering again may replace them.
#pragma once

#include <QImage>
#include <QSize>
#include <QString>
#include <QWidget>

#include "vmlab/result.hpp"
#include "vmlab/viz/app/view.hpp"

namespace vmlab::viz {

enum class ImageFormat { Png, Svg };
// By the name's extension, .png or .svg (any case).
Result<ImageFormat> image_format_of(const QString& path);

// `widget` as it is drawn now, marked as vmlab-viz's.
QImage grab_image(QWidget& widget);
// Writes `widget` to `path` in the format its extension names.
Status save_widget_image(QWidget& widget, const QString& path, const QString& title);

// A view made for a picture of `size`: created off screen, laid out and
// shown there (never on a screen), its tool bar hidden. The caller owns it.
// A view of the trace (null for a kind that draws a comparison)...
std::unique_ptr<View> make_offscreen_view(const ViewKind& kind, TraceDocument& document,
                                          ViewLinks& links, QSize size,
                                          TimeRange range = TimeRange{0, 0});
// ... and one of a comparison (null for a kind that draws a trace).
std::unique_ptr<ViewBase> make_offscreen_view(const ViewKind& kind, ComparisonDocument& document,
                                              QSize size);

struct RenderRequest {
  QString view;           // a view_kinds() name
  QString file;           // what it draws: a trace, or a comparison for the comparison view
  QString output;         // .png or .svg
  QSize size;             // empty: the view's own render size
  TimeRange range{0, 0};  // empty: the whole run
};
// Loads the file, renders the view, writes the image. Errors: VizError's
// (kUsage for a file of the kind the view does not draw), or the reader's
// (TraceError, ComparisonError) for a file that cannot be read.
Status render_to_file(const RenderRequest& request);

}  // namespace vmlab::viz
