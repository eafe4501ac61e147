// What the view tests share: the hand-written trace as a document, a view
// of it made off screen, and reading its pixels.
#pragma once

#include <gtest/gtest.h>

#include <QImage>
#include <memory>

#include "../viz_engine/sample_trace.hpp"
#include "../viz_engine/viz_test_support.hpp"
#include "vmlab/viz/app/render.hpp"
#include "vmlab/viz/app/view.hpp"

namespace vmlab::viz::testing {

inline std::shared_ptr<const TraceModel> sample_trace() {
  return std::make_shared<const TraceModel>(load_text(kSampleTrace));
}

// A document, its links and one view of it, shown off screen.
struct OffscreenView {
  OffscreenView(const QString& name, QSize size,
                std::shared_ptr<const TraceModel> trace = sample_trace()) {
    document.set_trace(std::move(trace), QStringLiteral("sample.trace"));
    const ViewKind* kind = find_view_kind(name);
    EXPECT_NE(kind, nullptr) << name.toStdString();
    if (kind != nullptr) view = make_offscreen_view(*kind, document, links, size);
  }
  QImage image() { return grab_image(*view->content()).convertToFormat(QImage::Format_RGB32); }

  TraceDocument document;
  ViewLinks links;
  std::unique_ptr<View> view;
};

inline QRgb rgb_at(const QImage& image, int x, int y) {
  return image.pixel(x, y) & 0xffffffu;
}

inline std::string colour_name(QRgb colour) {
  return QColor::fromRgb(colour).name().toStdString();
}

}  // namespace vmlab::viz::testing
