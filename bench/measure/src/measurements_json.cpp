// The suite's results as JSON: every sample kept, so that a report made from
// the file takes its medians and spreads exactly as one made from the run.
#include <nlohmann/json.hpp>

#include "json_reader.hpp"
#include "vmlab/measure/operations.hpp"
#include "vmlab/text_file.hpp"

namespace vmlab::measure {

namespace {

using Json = nlohmann::json;

constexpr std::string_view kFormat = "vmlab-operations";
constexpr int kVersion = 1;

nlohmann::ordered_json samples_json(const Samples& samples) {
  return nlohmann::ordered_json(samples.values);
}

std::optional<CellStatus> status_of(std::string_view name) {
  for (auto status :
       {CellStatus::Measured, CellStatus::Failed, CellStatus::NotApplicable, CellStatus::NotRun}) {
    if (cell_status_name(status) == name) return status;
  }
  return std::nullopt;
}

// The suite's own fields, on top of the generic reader.
class Reader : public JsonReader {
 public:
  using JsonReader::JsonReader;

  Samples samples(const Json& value, const std::string& path) {
    Samples samples;
    if (!value.is_array()) {
      fail(path, "should be an array of numbers");
      return samples;
    }
    for (const auto& item : value) {
      if (!item.is_number()) {
        fail(path, "should be an array of numbers");
        return samples;
      }
      samples.values.push_back(item.get<double>());
    }
    return samples;
  }

  CellStatus status(std::string& reason) {
    const std::string name = text("status");
    if (failed()) return CellStatus::NotRun;
    auto status = status_of(name);
    if (!status) {
      fail(path() + "status", "'" + name + "' is not measured, failed, not-applicable or not-run");
      return CellStatus::NotRun;
    }
    if (*status != CellStatus::Measured) reason = text("reason");
    return *status;
  }
};

}  // namespace

void write_measurements_json(const Measurements& measurements, std::ostream& out) {
  // In this order, so that the file starts with what it is (an output that
  // replaces a file checks its first bytes: runner.cpp).
  nlohmann::ordered_json document;
  document["format"] = kFormat;
  document["version"] = kVersion;
  document["platform"] = measurements.platform_line;
  document["date"] = measurements.date;
  document["tsc_khz"] = measurements.tsc_khz;
  document["repetitions"] = measurements.repetitions;
  document["techniques"] = measurements.technique_labels;
  document["operations"] = measurements.operation_names;
  nlohmann::ordered_json cells = nlohmann::ordered_json::array();
  for (const auto& cell : measurements.cells) {
    nlohmann::ordered_json item;
    item["operation"] = cell.operation;
    item["technique"] = cell.technique;
    item["status"] = cell_status_name(cell.status);
    if (cell.status != CellStatus::Measured) item["reason"] = cell.reason;
    nlohmann::ordered_json figures = nlohmann::ordered_json::object();
    for (const auto& [figure, samples] : cell.figures)
      figures[std::string(figure_key(figure))] = samples_json(samples);
    item["figures"] = figures;
    cells.push_back(item);
  }
  document["cells"] = cells;
  nlohmann::ordered_json boot = nlohmann::ordered_json::array();
  for (const auto& cell : measurements.boot) {
    nlohmann::ordered_json item;
    item["technique"] = cell.technique;
    item["status"] = cell_status_name(cell.status);
    if (cell.status != CellStatus::Measured) item["reason"] = cell.reason;
    item["to_first_entry_ms"] = samples_json(cell.to_first_entry_ms);
    item["to_result_line_ms"] = samples_json(cell.to_result_line_ms);
    boot.push_back(item);
  }
  document["boot"] = boot;
  out << document.dump(1) << "\n";
}

Result<Measurements> parse_measurements_json(std::string_view text) {
  auto document = parse_vmlab_document(text, kFormat, "vmlab report --save", kVersion);
  if (!document) return document.error();
  std::optional<Error> error;
  Reader top(*document, "", error);
  Measurements measurements;
  measurements.platform_line = top.text("platform");
  measurements.date = top.text("date");
  const double tsc_khz = top.number("tsc_khz");
  measurements.tsc_khz = static_cast<std::uint32_t>(std::max(0.0, tsc_khz));
  measurements.repetitions = static_cast<int>(top.number("repetitions"));
  auto names = [&](const char* field, std::vector<std::string>& into) {
    const Json* list = top.array(field);
    if (list == nullptr) return;
    for (const auto& item : *list) {
      if (!item.is_string()) {
        top.fail(field, "should be an array of strings");
        return;
      }
      into.push_back(item.get<std::string>());
    }
  };
  names("techniques", measurements.technique_labels);
  names("operations", measurements.operation_names);
  if (const Json* cells = top.array("cells")) {
    for (std::size_t index = 0; index < cells->size() && !error; ++index) {
      const std::string path = "cells[" + std::to_string(index) + "].";
      Reader reader((*cells)[index], path, error);
      Cell cell;
      cell.operation = reader.text("operation");
      cell.technique = reader.text("technique");
      cell.status = reader.status(cell.reason);
      if (const Json* figures = reader.find("figures"); figures != nullptr) {
        if (!figures->is_object()) reader.fail(path + "figures", "should be an object");
        for (auto item = figures->begin(); !error && figures->is_object() && item != figures->end();
             ++item) {
          auto figure = figure_of_key(item.key());
          if (!figure) {
            reader.fail(path + "figures." + item.key(), "is not a figure of the suite");
            break;
          }
          cell.figures[*figure] = reader.samples(item.value(), path + "figures." + item.key());
        }
      }
      measurements.cells.push_back(std::move(cell));
    }
  }
  if (const Json* boot = top.array("boot")) {
    for (std::size_t index = 0; index < boot->size() && !error; ++index) {
      const std::string path = "boot[" + std::to_string(index) + "].";
      Reader reader((*boot)[index], path, error);
      BootCell cell;
      cell.technique = reader.text("technique");
      cell.status = reader.status(cell.reason);
      if (const Json* value = reader.find("to_first_entry_ms")) {
        cell.to_first_entry_ms = reader.samples(*value, path + "to_first_entry_ms");
      }
      if (const Json* value = reader.find("to_result_line_ms")) {
        cell.to_result_line_ms = reader.samples(*value, path + "to_result_line_ms");
      }
      measurements.boot.push_back(std::move(cell));
    }
  }
  if (error) return *error;
  return measurements;
}

Result<Measurements> read_measurements_file(const std::string& path) {
  return read_and_parse_file(path, MeasureError::kUnreadable, "results", parse_measurements_json);
}

}  // namespace vmlab::measure
