// The colours of the views, in one place: each lane's band, what each span
// was, the connectors between levels. Chosen to read on a projector and in
// print: light bands, saturated spans, dark connectors; families of hues
// for families of reasons (port I/O warm, MMIO purple, the monitor's
// emulation orange to brown, bt olive and teal, hypercalls magenta).
#pragma once

#include <QColor>
#include <string_view>

#include "vmlab/viz/timeline.hpp"

namespace vmlab::viz::palette {

// The band behind a lane's spans.
QColor lane_band(TimelineLane lane);
// A span on `lane` labelled `label`: guest running takes its lane's colour
// (kernel blue, user green), events their reason's.
QColor span(TimelineLane lane, SpanLabel label);
// An event of this kind and reason anywhere (charts, markers).
QColor reason(EventKind kind, EventReason reason);

QColor background();  // behind everything
QColor ruler_text();  // the ruler's figures and the lane names
QColor grid();        // the ruler's ticks and the lines under them
QColor connector();   // a transition between levels
QColor highlight();   // the event a search or a click found
QColor selection();   // the selected time range (translucent)
QColor count_bars();  // the reasons chart: events per reason
QColor time_bars();   // ... and time per reason

// The technique whose colour a comparison row takes: its CPU mode, and for a
// simulation's rows the measured run's mode, hvm's for a hardware platform
// (vtx-*, amdv-*), bt's for a translator's.
std::string_view technique_family(std::string_view cpu);
// The comparison view: a technique's bars (hvm slate, full orange as the
// monitor's emulation, bt teal, para magenta as its hypercalls; `variant`
// 1, 2, ... a shade of it for hvm+kirq or another disk model), a level's
// share of the time (the timeline's colours for the guest), and the slot of
// a run that failed or has no figure.
QColor technique(std::string_view cpu, int variant);
QColor level(TimelineLane lane);
QColor failed_slot();
QColor failed_text();
QColor missing_slot();

// Black or white, whichever reads on `fill`.
QColor text_on(const QColor& fill);

}  // namespace vmlab::viz::palette
