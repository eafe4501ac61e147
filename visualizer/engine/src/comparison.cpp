#include "vmlab/viz/comparison.hpp"
#include "vmlab/text_file.hpp"

#include <nlohmann/json.hpp>

namespace vmlab::viz {

namespace {

using Json = nlohmann::json;

std::string type_of(const Json& value) {
  if (value.is_number_unsigned() || value.is_number_integer()) return "a whole number";
  if (value.is_number_float()) return "a fractional number";
  return std::string("a") + (value.is_object() || value.is_array() ? "n " : " ") +
         value.type_name();
}

// Reads the fields of one JSON object, each named by its path in the file;
// the first problem is kept and later reads give defaults, so a row reads
// field after field and is checked once at the end.
class ObjectReader {
 public:
  ObjectReader(const Json& object, std::string path, std::optional<Error>& error)
      : m_object(object), m_path(std::move(path)), m_error(error) {}

  std::string text(const char* name) {
    const Json* value = find(name);
    if (value == nullptr) return {};
    if (!value->is_string()) {
      wrong_type(name, "a string", *value);
      return {};
    }
    return value->get<std::string>();
  }

  bool flag(const char* name) {
    const Json* value = find(name);
    if (value == nullptr) return false;
    if (!value->is_boolean()) {
      wrong_type(name, "true or false", *value);
      return false;
    }
    return value->get<bool>();
  }

  // A flag that older files do not have: false when absent.
  bool optional_flag(const char* name) {
    const Json* value = find_optional(name);
    if (value == nullptr) return false;
    if (!value->is_boolean()) {
      wrong_type(name, "true or false", *value);
      return false;
    }
    return value->get<bool>();
  }

  std::uint64_t count(const char* name) {
    const Json* value = find(name);
    if (value == nullptr) return 0;
    if (value->is_number_unsigned()) return value->get<std::uint64_t>();
    if (value->is_number_integer()) {
      fail(ComparisonError::kInvalidValue, name, "must not be negative");
      return 0;
    }
    wrong_type(name, "a whole number", *value);
    return 0;
  }

  // A figure that cannot be negative (rates, shares, ratios).
  double figure(const char* name) {
    const Json* value = find(name);
    if (value == nullptr) return 0;
    return figure_of(name, *value);
  }

  std::optional<double> figure_or_null(const char* name) {
    const Json* value = find(name);
    if (value == nullptr || value->is_null()) return std::nullopt;
    return figure_of(name, *value);
  }

  // A nested object, or none (and an error) if it is absent or not one.
  const Json* object(const char* name, bool required) {
    const Json* value = required ? find(name) : find_optional(name);
    if (value == nullptr) return nullptr;
    if (!value->is_object()) {
      wrong_type(name, "an object", *value);
      return nullptr;
    }
    return value;
  }

  std::string path_of(const char* name) const { return m_path + name; }

 private:
  const Json* find_optional(const char* name) {
    if (m_error) return nullptr;
    const auto found = m_object.find(name);
    return found == m_object.end() ? nullptr : &*found;
  }

  const Json* find(const char* name) {
    if (m_error) return nullptr;
    const Json* value = find_optional(name);
    if (value == nullptr) fail(ComparisonError::kMissingField, name, "is missing");
    return value;
  }

  double figure_of(const char* name, const Json& value) {
    if (!value.is_number()) {
      wrong_type(name, "a number", value);
      return 0;
    }
    const double number = value.get<double>();
    if (number < 0) fail(ComparisonError::kInvalidValue, name, "must not be negative");
    return number;
  }

  void wrong_type(const char* name, const char* expected, const Json& value) {
    fail(ComparisonError::kWrongType, name,
         std::string("should be ") + expected + ", not " + type_of(value));
  }

  void fail(ComparisonError kind, const char* name, const std::string& why) {
    if (!m_error) m_error = Error{kind, path_of(name) + ": " + why};
  }

  const Json& m_object;
  std::string m_path;
  std::optional<Error>& m_error;
};

void read_translation(const Json& object, const std::string& path, TranslationFigures& figures,
                      std::optional<Error>& error) {
  ObjectReader reader(object, path, error);
  figures.blocks = reader.count("blocks");
  figures.guest_instructions = reader.count("guest_instructions");
  figures.tc_bytes = reader.count("tc_bytes");
  figures.branch_exits = reader.count("branch_exits");
  figures.chained = reader.count("chained");
  figures.lookup_misses = reader.count("lookup_misses");
  figures.blocks_invalidated = reader.count("blocks_invalidated");
  figures.flushes = reader.count("flushes");
  const Json* call_outs = reader.object("call_outs", true);
  if (call_outs == nullptr) return;
  ObjectReader counts(*call_outs, path + "call_outs.", error);
  for (const auto& [mnemonic, count] : call_outs->items()) {
    figures.call_outs.emplace_back(mnemonic, counts.count(mnemonic.c_str()));
  }
}

ComparisonRow read_row(const Json& object, const std::string& path, std::optional<Error>& error) {
  ComparisonRow row;
  ObjectReader reader(object, path, error);
  row.workload = reader.text("workload");
  row.n = reader.count("n");
  row.cpu = reader.text("cpu");
  row.irqchip = reader.text("irqchip");
  if (!error && row.irqchip != "vmm" && row.irqchip != "kernel") {
    error = Error{ComparisonError::kInvalidValue,
                  reader.path_of("irqchip") + ": '" + row.irqchip + "' is not vmm or kernel"};
  }
  row.disk_model = reader.text("disk_model");
  row.ok = reader.flag("ok");
  row.emulator = reader.optional_flag("emulator");
  if (!row.ok) {
    row.failure = reader.text("failure");
    return row;
  }
  row.cycles = reader.count("cycles");
  row.cycles_per_op = reader.figure("cycles_per_op");
  row.vm_exits_per_op = reader.figure("vm_exits_per_op");
  row.kvm_exits_per_op = reader.figure("kvm_exits_per_op");
  row.monitor_traps_per_op = reader.figure("monitor_traps_per_op");
  row.hypercalls_per_op = reader.figure("hypercalls_per_op");
  if (const Json* shares = reader.object("share_percent", true)) {
    ObjectReader share(*shares, path + "share_percent.", error);
    row.shares.guest = share.figure("guest");
    row.shares.guest_user_at_exit = share.figure("guest_user_at_exit");
    row.shares.guest_kernel_at_exit = share.figure("guest_kernel_at_exit");
    row.shares.monitor = share.figure("monitor");
    row.shares.vmm = share.figure("vmm");
    row.shares.halted = share.figure("halted");
  }
  row.relative_to_hvm = reader.figure_or_null("relative_to_hvm");
  if (const Json* translation = reader.object("translation", false)) {
    row.translation.emplace();
    read_translation(*translation, path + "translation.", *row.translation, error);
  }
  row.result = reader.text("result");
  return row;
}

// "cpu=full workload=pagefaults n=1000" -> the value of `key`.
std::string run_field(const std::string& run, const std::string& key) {
  const std::size_t start = run.find(key + "=");
  if (start == std::string::npos) return {};
  const std::size_t value = start + key.size() + 1;
  return run.substr(value, run.find(' ', value) == std::string::npos
                               ? std::string::npos
                               : run.find(' ', value) - value);
}

// One column of a simulation: the time by level (an object of ns) as a row.
void fill_simulated_row(const Json& levels, const std::string& path, ComparisonRow& row,
                        double reference_ns, std::optional<Error>& error) {
  ObjectReader reader(levels, path, error);
  const double user = reader.figure("guest-user");
  const double kernel = reader.figure("guest-kernel");
  const double unknown = reader.figure("unknown");
  const double monitor = reader.figure("monitor");
  const double vmm = reader.figure("vmm");
  const double halted = reader.figure("halted");
  const double total = reader.figure("total");
  if (error) return;
  row.ok = true;
  const double operations = static_cast<double>(std::max<std::uint64_t>(1, row.n));
  row.cycles_per_op = total / operations;
  const double share = total > 0 ? 100 / total : 0;
  row.shares.guest = (user + kernel + unknown) * share;
  row.shares.guest_user_at_exit = user * share;
  row.shares.guest_kernel_at_exit = kernel * share;
  row.shares.monitor = monitor * share;
  row.shares.vmm = vmm * share;
  row.shares.halted = halted * share;
  if (reference_ns > 0) row.relative_to_hvm = total / reference_ns;
}

Result<ComparisonResults> parse_simulation(const Json& document) {
  std::optional<Error> error;
  ComparisonResults results;
  results.simulated = true;
  ObjectReader reader(document, "", error);
  results.platform_line = reader.text("platform");
  results.simulated_trace = reader.text("trace");
  const std::string run = reader.text("run");
  const std::string technique = reader.text("technique");
  const Json* measured = reader.object("measured_ns", true);
  if (error) return *error;
  ComparisonRow base;
  base.workload = run_field(run, "workload");
  std::uint64_t count = 0;
  for (char digit : run_field(run, "n")) {
    if (digit < '0' || digit > '9') break;
    count = count * 10 + static_cast<std::uint64_t>(digit - '0');
  }
  base.n = count;
  base.irqchip = "vmm";
  ComparisonRow measured_row = base;
  measured_row.cpu = "measured " + technique;
  const double measured_total = measured->contains("total") && (*measured)["total"].is_number()
                                    ? (*measured)["total"].get<double>()
                                    : 0;
  fill_simulated_row(*measured, "measured_ns.", measured_row, measured_total, error);
  const auto predictions = document.find("predictions");
  if (!error && (predictions == document.end() || !predictions->is_array())) {
    error = Error{ComparisonError::kMissingField, "predictions: should be an array"};
  }
  if (error) return *error;
  results.rows.push_back(measured_row);
  for (std::size_t index = 0; index < predictions->size() && !error; ++index) {
    const std::string path = "predictions[" + std::to_string(index) + "].";
    const Json& prediction = (*predictions)[index];
    if (!prediction.is_object()) {
      return Error{ComparisonError::kWrongType, path + " should be an object"};
    }
    ObjectReader item(prediction, path, error);
    ComparisonRow row = base;
    row.cpu = item.text("profile");
    const Json* levels = item.object("predicted_ns", true);
    if (levels != nullptr)
      fill_simulated_row(*levels, path + "predicted_ns.", row, measured_total, error);
    // Events that are exits there, and a translator's work, per operation.
    const auto events = prediction.find("events");
    if (!error && events != prediction.end() && events->is_array()) {
      double exits = 0, traps = 0, measured_exits = 0, measured_traps = 0;
      for (const auto& event : *events) {
        if (!event.is_object() || !event.contains("count") || !event["count"].is_number()) continue;
        const double number = event["count"].get<double>();
        const auto named = event.find("event");
        const std::string name =
            named != event.end() && named->is_string() ? named->get<std::string>() : std::string();
        if (name.starts_with("exit-")) measured_exits += number;
        if (name.starts_with("trap-") || name == "hypercall") measured_traps += number;
        if (!event.contains("becomes") || !event["becomes"].is_string()) continue;
        const std::string becomes = event["becomes"].get<std::string>();
        if (becomes.ends_with("-exit")) {
          exits += number;
        } else if (becomes.starts_with("bt-")) {
          traps += number;
        }
      }
      const double operations = static_cast<double>(std::max<std::uint64_t>(1, row.n));
      // A calibrated profile replays the events as they were recorded.
      const bool as_recorded = item.text("kind") == "calibrated";
      row.vm_exits_per_op = (as_recorded ? measured_exits : exits) / operations;
      row.monitor_traps_per_op = (as_recorded ? measured_traps : traps) / operations;
      if (index == 0) {  // every prediction lists the same recorded events
        results.rows.front().vm_exits_per_op = measured_exits / operations;
        results.rows.front().monitor_traps_per_op = measured_traps / operations;
      }
    }
    if (!error) results.rows.push_back(row);
  }
  if (error) return *error;
  return results;
}

}  // namespace

Result<ComparisonResults> parse_comparison_json(std::string_view text) {
  Json document;
  try {
    document = Json::parse(text);
  } catch (const Json::parse_error& error) {
    // "[json.exception.parse_error.101] parse error at line 1, column 5: ..."
    std::string what = error.what();
    if (const auto end = what.find("] "); what.rfind("[json.", 0) == 0 && end != std::string::npos)
      what.erase(0, end + 2);
    return Error{ComparisonError::kMalformedJson, "not a JSON document: " + what};
  }
  if (!document.is_object()) {
    return Error{
        ComparisonError::kWrongType,
        "the document should be an object (from `vmlab compare --json`), not " + type_of(document)};
  }
  if (auto format = document.find("format"); format != document.end() && format->is_string() &&
                                             format->get<std::string>() == "vmlab-simulation") {
    return parse_simulation(document);
  }
  std::optional<Error> error;
  ComparisonResults results;
  ObjectReader reader(document, "", error);
  results.platform_line = reader.text("platform");
  const auto rows = document.find("rows");
  if (!error && rows == document.end()) {
    error = Error{ComparisonError::kMissingField, "rows: is missing"};
  } else if (!error && !rows->is_array()) {
    error = Error{ComparisonError::kWrongType, "rows: should be an array, not " + type_of(*rows)};
  }
  if (error) return *error;
  for (std::size_t index = 0; index < rows->size(); ++index) {
    const std::string path = "rows[" + std::to_string(index) + "]";
    const Json& row = (*rows)[index];
    if (!row.is_object()) {
      return Error{ComparisonError::kWrongType,
                   path + ": should be an object, not " + type_of(row)};
    }
    results.rows.push_back(read_row(row, path + ".", error));
    if (error) return *error;
  }
  return results;
}

Result<ComparisonResults> read_comparison_file(const std::string& path) {
  return read_and_parse_file(path, ComparisonError::kUnreadable, "comparison",
                             parse_comparison_json);
}

}  // namespace vmlab::viz
