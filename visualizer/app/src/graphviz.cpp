#include "vmlab/viz/app/graphviz.hpp"

#include <graphviz/gvc.h>

#include <QCoreApplication>
#include <QThread>
#include <memory>
#include <string_view>

#include "vmlab/viz/app/output_file.hpp"

namespace vmlab::viz {

namespace {

// What cgraph reported during one call (its error function has no context
// argument; the GUI thread is the only caller, see the header).
std::string g_messages;

int collect_message(char* message) {
  g_messages += message;
  return 0;
}

struct ContextDeleter {
  void operator()(GVC_t* context) const { gvFreeContext(context); }
};

GVC_t* context() {
  static const std::unique_ptr<GVC_t, ContextDeleter> shared(gvContext());
  return shared.get();
}

// Sends cgraph's messages to g_messages for as long as it lives, warnings
// included: a view's graph should not print on the terminal.
class CollectedMessages {
 public:
  CollectedMessages()
      : m_previous_function(agseterrf(collect_message)), m_previous_level(agseterr(AGWARN)) {
    g_messages.clear();
    agreseterrors();
  }
  ~CollectedMessages() {
    agseterrf(m_previous_function);
    agseterr(m_previous_level);
  }
  CollectedMessages(const CollectedMessages&) = delete;
  CollectedMessages& operator=(const CollectedMessages&) = delete;

  // The messages as one line, without cgraph's "Error: " and line breaks.
  static std::string text() {
    std::string text;
    for (const char character : g_messages)
      text += character == '\n' ? ' ' : character;
    for (const std::string_view prefix : {"Error: ", "Warning: "}) {
      for (auto found = text.find(prefix); found != std::string::npos; found = text.find(prefix))
        text.erase(found, prefix.size());
    }
    while (!text.empty() && text.back() == ' ')
      text.pop_back();
    return text.empty() ? "it gave no reason" : text;
  }

 private:
  agusererrf m_previous_function;
  agerrlevel_t m_previous_level;
};

Error graphviz_error(const std::string& what) {
  std::string message = "Graphviz " + what + ": " + CollectedMessages::text();
  if (message.find("not recognized") != std::string::npos) {
    message +=
        " (libgvc finds its layout and SVG plugins through its config file; on Debian "
        "they come with libgvc6, and `dot -c` as root rebuilds that file)";
  }
  return Error{VizError::kRenderFailed, message};
}

struct GraphDeleter {
  void operator()(Agraph_t* graph) const { agclose(graph); }
};

}  // namespace

#if defined(__SANITIZE_ADDRESS__)
// LeakSanitizer's list of leaks that are not vmlab's, for every program
// that lays out graphs. Graphviz 2.42 keeps its config file's text
// (gvconfig) and, with clusters and HTML labels, a few of each layout's
// edges and cells (dot_mincross, htmlparse) past gvFreeLayout; its pango
// plugin and pango's font thread keep fontconfig's font lists. The default
// (fast) unwinder stops inside these libraries, which have no frame
// pointers, so the libraries are named, not their functions. Of what vmlab
// owns, the graph is cgraph's memory (not suppressed, closed by agclose) and
// the SVG text is freed by gvFreeRenderData as soon as it is copied.
extern "C" const char* __lsan_default_suppressions() {  // NOLINT(bugprone-reserved-identifier)
  return "leak:libgvc.so\n"
         "leak:libgvplugin_dot_layout.so\n"
         "leak:libgvplugin_pango.so\n"
         "leak:libfontconfig.so\n"
         "leak:libglib-2.0.so\n";
}
// ... and quiet about having used them: a render prints nothing but errors.
extern "C" const char* __lsan_default_options() {  // NOLINT(bugprone-reserved-identifier)
  return "print_suppressions=0";
}
#endif

Result<QByteArray> layout_svg(const std::string& dot) {
  const QCoreApplication* application = QCoreApplication::instance();
  if (application != nullptr && QThread::currentThread() != application->thread()) {
    return Error{VizError::kRenderFailed,
                 "Graphviz was called off the GUI thread; libgvc is not thread-safe"};
  }
  const CollectedMessages messages;
  GVC_t* graphviz = context();
  if (graphviz == nullptr) return graphviz_error("could not start (gvContext)");
  const std::unique_ptr<Agraph_t, GraphDeleter> graph(agmemread(dot.c_str()));
  if (!graph) return graphviz_error("could not read the graph's DOT text");
  if (gvLayout(graphviz, graph.get(), "dot") != 0)
    return graphviz_error("could not lay out the graph");
  char* data = nullptr;
  unsigned int length = 0;
  const int rendered = gvRenderData(graphviz, graph.get(), "svg", &data, &length);
  QByteArray svg;
  if (rendered == 0 && data != nullptr) svg = QByteArray(data, static_cast<qsizetype>(length));
  gvFreeRenderData(data);
  gvFreeLayout(graphviz, graph.get());
  if (rendered != 0 || svg.isEmpty()) return graphviz_error("could not write the graph as SVG");
  return svg;
}

}  // namespace vmlab::viz
