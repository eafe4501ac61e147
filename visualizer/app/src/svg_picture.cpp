#include "vmlab/viz/app/svg_picture.hpp"

#include <QPainter>
#include <algorithm>

#include "vmlab/viz/app/palette.hpp"

namespace vmlab::viz {

SvgPicture::SvgPicture(QWidget* parent) : QWidget(parent), m_renderer(this) {
  setMinimumSize(160, 120);
}

bool SvgPicture::set_svg(const QByteArray& svg) {
  // An empty picture draws nothing (picture_rect), whatever was loaded before.
  const bool loaded = svg.isEmpty() || m_renderer.load(svg);
  m_svg = loaded ? svg : QByteArray();
  updateGeometry();
  update();
  return loaded;
}

QRectF SvgPicture::picture_rect() const {
  if (m_svg.isEmpty() || !m_renderer.isValid()) return {};
  const QSizeF own = m_renderer.defaultSize();
  if (own.isEmpty()) return {};
  const double scale = std::min({width() / own.width(), height() / own.height(), kLargestScale});
  const QSizeF drawn = own * scale;
  return QRectF(QPointF((width() - drawn.width()) / 2, (height() - drawn.height()) / 2), drawn);
}

QSize SvgPicture::sizeHint() const {
  return m_renderer.isValid() && !m_svg.isEmpty() ? m_renderer.defaultSize() : QSize(400, 300);
}

void SvgPicture::paintEvent(QPaintEvent*) {
  QPainter painter(this);
  painter.fillRect(rect(), palette::background());
  const QRectF target = picture_rect();
  if (target.isEmpty()) return;
  painter.setRenderHint(QPainter::Antialiasing);
  painter.setRenderHint(QPainter::TextAntialiasing);
  m_renderer.render(&painter, target);
}

}  // namespace vmlab::viz
