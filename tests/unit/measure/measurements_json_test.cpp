// The suite's measurements file: what write_measurements_json writes reads
// back sample for sample, and a file that is not one is refused with the
// field named.
#include <gtest/gtest.h>

#include <sstream>

#include "vmlab/measure/operations.hpp"

namespace vmlab::measure {
namespace {

Measurements sample() {
  Measurements measurements;
  measurements.platform_line = "platform: kvm_pvm (software KVM backend) on Test CPU";
  measurements.date = "2026-12-02T12:00:00Z";
  measurements.tsc_khz = 2'000'000;
  measurements.repetitions = 3;
  measurements.technique_labels = {"hvm", "para"};
  measurements.operation_names = {"syscall", "cr8wr"};
  Cell syscall;
  syscall.operation = "syscall";
  syscall.technique = "hvm";
  syscall.status = CellStatus::Measured;
  syscall.figures[Figure::CyclesPerOp].values = {300, 100, 200};
  syscall.figures[Figure::VmmEntriesPerOp].values = {0, 0, 0.5};
  measurements.cells.push_back(syscall);
  Cell cr8;
  cr8.operation = "cr8wr";
  cr8.technique = "para";
  cr8.status = CellStatus::NotApplicable;
  cr8.reason = "no TPR";
  measurements.cells.push_back(cr8);
  BootCell boot;
  boot.technique = "hvm";
  boot.status = CellStatus::Measured;
  boot.to_first_entry_ms.values = {5, 6, 7};
  boot.to_result_line_ms.values = {50, 60, 70};
  measurements.boot.push_back(boot);
  return measurements;
}

std::string written(const Measurements& measurements) {
  std::ostringstream out;
  write_measurements_json(measurements, out);
  return out.str();
}

TEST(MeasurementsJson, ReadsBackWhatItWrites) {
  const std::string text = written(sample());
  EXPECT_EQ(text.rfind("{\n \"format\": \"vmlab-operations\"", 0), 0u)
      << "starts with what it is, as an output that may be replaced must";
  auto read = parse_measurements_json(text);
  ASSERT_TRUE(read.ok()) << read.error().message;
  EXPECT_EQ(read->platform_line, sample().platform_line);
  EXPECT_EQ(read->tsc_khz, 2'000'000u);
  EXPECT_EQ(read->repetitions, 3);
  EXPECT_EQ(read->technique_labels, (std::vector<std::string>{"hvm", "para"}));
  ASSERT_EQ(read->cells.size(), 2u);
  const Cell* syscall = read->cell("syscall", "hvm");
  ASSERT_NE(syscall, nullptr);
  ASSERT_NE(syscall->figure(Figure::CyclesPerOp), nullptr);
  EXPECT_EQ(syscall->figure(Figure::CyclesPerOp)->values, (std::vector<double>{300, 100, 200}));
  EXPECT_EQ(syscall->figure(Figure::MonitorTrapsPerOp), nullptr) << "hvm has no monitor";
  const Cell* cr8 = read->cell("cr8wr", "para");
  ASSERT_NE(cr8, nullptr);
  EXPECT_EQ(cr8->status, CellStatus::NotApplicable);
  EXPECT_EQ(cr8->reason, "no TPR");
  ASSERT_NE(read->boot_of("hvm"), nullptr);
  EXPECT_EQ(read->boot_of("hvm")->to_result_line_ms.values, (std::vector<double>{50, 60, 70}));
}

TEST(MeasurementsJson, MediansAndSpreads) {
  Samples odd{{300, 100, 200}};
  EXPECT_DOUBLE_EQ(odd.median(), 200);
  EXPECT_DOUBLE_EQ(odd.minimum(), 100);
  EXPECT_DOUBLE_EQ(odd.maximum(), 300);
  Samples even{{4, 1, 3, 2}};
  EXPECT_DOUBLE_EQ(even.median(), 2.5) << "the mean of the middle two";
  EXPECT_DOUBLE_EQ(Samples{}.median(), 0);
}

// Each bad file names the field at fault.
TEST(MeasurementsJson, RefusesWhatIsNotOne) {
  const std::string good = written(sample());
  auto refused = [](const std::string& text) {
    auto read = parse_measurements_json(text);
    return read.ok() ? std::string("accepted") : read.error().message;
  };
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string text = good;
    const auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return text.replace(at, from.size(), to);
  };
  EXPECT_NE(refused("{").find("not a JSON document"), std::string::npos);
  EXPECT_NE(refused("[]").find("should be an object"), std::string::npos);
  EXPECT_NE(refused(replaced("vmlab-operations", "vmlab-trace")).find("format"), std::string::npos);
  EXPECT_NE(refused(replaced("\"version\": 1", "\"version\": 2")).find("version"),
            std::string::npos);
  EXPECT_NE(refused(replaced("\"status\": \"measured\"", "\"status\": \"great\""))
                .find("cells[0].status"),
            std::string::npos);
  EXPECT_NE(refused(replaced("\"cycles_per_op\"", "\"speed\"")).find("cells[0].figures.speed"),
            std::string::npos);
  EXPECT_NE(refused(replaced("\"tsc_khz\": 2000000", "\"tsc_khz\": \"fast\"")).find("tsc_khz"),
            std::string::npos);
  EXPECT_NE(refused(replaced("\"reason\": \"no TPR\"", "\"why\": \"no TPR\""))
                .find("cells[1].reason: is missing"),
            std::string::npos);
  auto unreadable = read_measurements_file("/nonexistent/measurements.json");
  ASSERT_FALSE(unreadable.ok());
  EXPECT_EQ(unreadable.error().kind, MeasureError::kUnreadable);
}

TEST(MeasurementsJson, OptionsNameWhatTheSuiteHas) {
  MeasureOptions options;
  options.techniques = {"vmware"};
  auto checked = check_measure_options(options);
  ASSERT_FALSE(checked.ok());
  EXPECT_NE(checked.error().message.find("qemu-tcg"), std::string::npos) << "lists the choices";
  options.techniques = {};
  options.operations = {"fork"};
  checked = check_measure_options(options);
  ASSERT_FALSE(checked.ok());
  EXPECT_NE(checked.error().message.find("ptemod"), std::string::npos);
  EXPECT_TRUE(not_applicable(*find_operation("hypercall"), *find_technique("full")).has_value());
  EXPECT_FALSE(not_applicable(*find_operation("hypercall"), *find_technique("para")).has_value());
  EXPECT_TRUE(not_applicable(*find_operation("cr8wr"), *find_technique("para")).has_value());
}

}  // namespace
}  // namespace vmlab::measure
