// The window tested as a person uses it, on a real display server (Xvfb in
// the tests): open a trace through the loader, wait for it, zoom the
// timeline with the mouse wheel, check the view narrowed, and save a
// screenshot of the window as the display server shows it. Prints what it
// did; returns the process's exit status.
#pragma once

#include <QString>

namespace vmlab::viz {

int run_self_test(const QString& trace, const QString& screenshot);

}  // namespace vmlab::viz
