// The views Graphviz lays out (graphs.hpp writes their DOT, graphviz.hpp
// lays it out, SvgPicture shows the SVG):
//
// - the transition graph: the levels and every change between them in the
//   selected range, each edge "N× · time", following the selection;
// - how this mode works: the run's technique (from the trace header) as
//   who runs in which ring and CPU mode and every way between them, the way
//   of the event picked in the event list highlighted, and beside it the
//   two hypervisor models with where vmlab and KVM sit.
//
// Both colour the levels as the timeline's lanes are (palette.hpp).
#pragma once

#include <QBoxLayout>
#include <QLabel>
#include <optional>
#include <string>

#include "vmlab/viz/app/svg_picture.hpp"
#include "vmlab/viz/app/view.hpp"
#include "vmlab/viz/graphs.hpp"

namespace vmlab::viz {

// The graphs' colours and font, from the palette and the application's font.
GraphStyle graph_style();

class TransitionGraphView final : public View {
  Q_OBJECT

 public:
  TransitionGraphView(TraceDocument& document, ViewLinks& links, QWidget* parent = nullptr);

  Status render_status() const override { return m_status; }

  // What is drawn (tests).
  const std::string& dot() const { return m_dot; }
  const SvgPicture& picture() const { return *m_picture; }
  QString title() const { return m_title->text(); }

 private:
  void rebuild();

  QLabel* m_title;
  SvgPicture* m_picture;
  std::string m_dot;
  Status m_status;
};

class ModeView final : public View {
  Q_OBJECT

 public:
  ModeView(TraceDocument& document, ViewLinks& links, QWidget* parent = nullptr);

  Status render_status() const override {
    return m_models_status ? m_mode_status : m_models_status;
  }

  // Highlights `event`'s way (kNoEvent: none, the technique's usual way in
  // the caption); what the event list's activated row does.
  void show_event(EventIndex event);

  // What is drawn (tests).
  std::optional<Technique> technique() const { return m_technique; }
  const std::string& mode_dot() const { return m_mode_dot; }
  const SvgPicture& mode_picture() const { return *m_mode; }
  const SvgPicture& models_picture() const { return *m_models; }
  QString caption() const { return m_caption->text(); }

 protected:
  void resizeEvent(QResizeEvent* event) override;

 private:
  void rebuild();

  QLabel* m_caption;
  QBoxLayout* m_panels;
  SvgPicture* m_mode;
  SvgPicture* m_models;
  std::optional<Technique> m_technique;
  EventIndex m_event = kNoEvent;
  std::string m_mode_dot;
  Status m_mode_status;
  Status m_models_status;
};

}  // namespace vmlab::viz
