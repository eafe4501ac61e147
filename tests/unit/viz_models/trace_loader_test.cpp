// Loading off the GUI thread: a trace arrives whole with its progress, a
// malformed line fails naming it, a missing file fails, and a load cancelled
// while it reads ends as cancelled.
#include "vmlab/viz/models/trace_loader.hpp"

#include <gtest/gtest.h>

#include <QSignalSpy>

#include "../../support/scratch_files.hpp"
#include "../viz_engine/sample_trace.hpp"
#include "../viz_engine/viz_test_support.hpp"
#include "qt_test_support.hpp"

namespace vmlab::viz {
namespace {

using vmlab::testing::ScratchDirectory;
using vmlab::testing::write_file;

struct Outcome {
  std::shared_ptr<const TraceModel> trace;
  std::error_code kind;
  QString message;
  std::vector<int> progress;
  bool done = false;
};

Outcome load(TraceLoader& loader, const std::string& path, bool cancel_at_once = false) {
  Outcome outcome;
  QObject context;
  QObject::connect(&loader, &TraceLoader::progress, &context,
                   [&](int permille) { outcome.progress.push_back(permille); });
  QObject::connect(&loader, &TraceLoader::loaded, &context,
                   [&](std::shared_ptr<const TraceModel> trace, const QString&) {
                     outcome.trace = std::move(trace);
                     outcome.done = true;
                   });
  QObject::connect(&loader, &TraceLoader::failed, &context,
                   [&](std::error_code kind, const QString& message, const QString&) {
                     outcome.kind = kind;
                     outcome.message = message;
                     outcome.done = true;
                   });
  EXPECT_TRUE(loader.start(QString::fromStdString(path)));
  EXPECT_FALSE(loader.start(QString::fromStdString(path))) << "one load at a time";
  if (cancel_at_once) loader.cancel();
  EXPECT_TRUE(testing::wait_until([&] { return outcome.done; }, 60000));
  EXPECT_FALSE(loader.running());
  return outcome;
}

TEST(TraceLoader, LoadsOnAWorkerThread) {
  ScratchDirectory directory("vmlab-viz-loader-");
  write_file(directory / "sample.trace", testing::kSampleTrace);
  TraceLoader loader;
  const Outcome outcome = load(loader, (directory / "sample.trace").string());
  ASSERT_TRUE(outcome.trace) << outcome.message.toStdString();
  EXPECT_EQ(outcome.trace->events().size(), 10u);
  ASSERT_FALSE(outcome.progress.empty());
  EXPECT_EQ(outcome.progress.back(), 1000);
  EXPECT_TRUE(std::is_sorted(outcome.progress.begin(), outcome.progress.end()));
}

TEST(TraceLoader, AMalformedLineIsNamed) {
  ScratchDirectory directory("vmlab-viz-loader-");
  std::string text = testing::kSampleTrace;
  // Line 10 (the fourth event, a VM exit) gets a kind no trace has.
  const auto line_start = [&](int line) {
    std::size_t at = 0;
    for (int skipped = 1; skipped < line; ++skipped)
      at = text.find('\n', at) + 1;
    return at;
  };
  const std::size_t tenth = line_start(10);
  const std::size_t kind = text.find("vm-exit", tenth);
  ASSERT_LT(kind, line_start(11));
  text.replace(kind, 7, "vm-exot");
  write_file(directory / "bad.trace", text);
  TraceLoader loader;
  const Outcome outcome = load(loader, (directory / "bad.trace").string());
  EXPECT_FALSE(outcome.trace);
  EXPECT_EQ(outcome.kind, TraceError::kMalformedLine);
  EXPECT_TRUE(outcome.message.contains("line 10")) << outcome.message.toStdString();

  // The loader is free again.
  const Outcome missing = load(loader, (directory / "absent.trace").string());
  EXPECT_EQ(missing.kind, TraceError::kUnreadable);
}

TEST(TraceLoader, CancelledWhileReading) {
  ScratchDirectory directory("vmlab-viz-loader-");
  // Large enough that reading reports progress (and so sees the cancel)
  // long before it ends.
  write_file(directory / "large.trace", testing::trace_text(testing::random_events(7, 100'000)));
  TraceLoader loader;
  const Outcome outcome = load(loader, (directory / "large.trace").string(), true);
  EXPECT_FALSE(outcome.trace);
  EXPECT_EQ(outcome.kind, TraceError::kCancelled);
}

TEST(TraceLoader, DestroyedWhileLoading) {
  ScratchDirectory directory("vmlab-viz-loader-");
  write_file(directory / "large.trace", testing::trace_text(testing::random_events(8, 100'000)));
  auto loader = std::make_unique<TraceLoader>();
  QSignalSpy loaded(loader.get(), &TraceLoader::loaded);
  ASSERT_TRUE(loader->start(QString::fromStdString((directory / "large.trace").string())));
  loader.reset();  // cancels, waits for the thread; nothing arrives afterwards
  QCoreApplication::processEvents();
  EXPECT_EQ(loaded.count(), 0);
}

}  // namespace
}  // namespace vmlab::viz
