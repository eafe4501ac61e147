// An SVG drawn to fit its widget, its proportions kept, centred on the
// views' background: Graphviz's pictures at any dock size. Painting goes
// through QSvgRenderer, so an SVG export of a view holding one stays vector.
#pragma once

#include <QByteArray>
#include <QSvgRenderer>
#include <QWidget>

namespace vmlab::viz {

class SvgPicture final : public QWidget {
  Q_OBJECT

 public:
  explicit SvgPicture(QWidget* parent = nullptr);

  // Empty: nothing drawn. False if Qt cannot read it.
  bool set_svg(const QByteArray& svg);
  const QByteArray& svg() const { return m_svg; }
  // Where the picture is drawn in the widget (empty when there is none).
  QRectF picture_rect() const;

  QSize sizeHint() const override;

  // Drawn up to this much larger than its own size: Graphviz sizes text
  // for reading, and a small graph in a large dock need not fill it.
  static constexpr double kLargestScale = 1.6;

 protected:
  void paintEvent(QPaintEvent* event) override;

 private:
  QSvgRenderer m_renderer;
  QByteArray m_svg;
};

}  // namespace vmlab::viz
