// The scorecard as JSON: the evidence, which a scorecard read back is scored
// from, and the scores beside it for people and programs that only read.

#include "json_reader.hpp"
#include "vmlab/measure/scorecard.hpp"
#include "vmlab/text_file.hpp"

namespace vmlab::measure {

namespace {

using Json = nlohmann::json;
using Ordered = nlohmann::ordered_json;

constexpr std::string_view kFormat = "vmlab-scorecard";
constexpr int kVersion = 1;

Ordered comparisons_json(const std::vector<Comparison>& comparisons) {
  Ordered list = Ordered::array();
  for (const auto& comparison : comparisons) {
    Ordered item;
    item["name"] = comparison.name;
    item["value"] = comparison.value;
    item["expected"] = comparison.expected;
    item["not_applicable"] = comparison.not_applicable;
    item["substitute"] = comparison.substitute;
    list.push_back(item);
  }
  return list;
}

Ordered counts_json(const std::map<std::string, std::uint64_t>& counts) {
  Ordered object = Ordered::object();
  for (const auto& [name, count] : counts)
    object[name] = count;
  return object;
}

Ordered score_json(const Score& score) {
  Ordered item;
  item["text"] = score.text();
  item["satisfied"] = score.satisfied;
  item["total"] = score.total;
  item["not_applicable"] = score.not_applicable;
  item["explanation"] = score.explanation;
  return item;
}

Ordered technique_json(const TechniqueEvidence& technique) {
  Ordered item;
  item["technique"] = technique.technique;
  item["missing"] = technique.missing;
  item["equivalence_missing"] = technique.equivalence_missing;
  item["probes"] = comparisons_json(technique.probes);
  item["workloads"] = comparisons_json(technique.workloads);
  item["efficiency_missing"] = technique.efficiency_missing;
  Ordered census = Ordered::array();
  for (const auto& run : technique.census) {
    Ordered entry;
    entry["workload"] = run.workload;
    entry["kernel_steps"] = run.census.kernel_steps;
    entry["user_steps"] = run.census.user_steps;
    entry["translated_steps"] = run.census.translated_steps;
    entry["user_mode_counted"] = run.census.user_mode_counted;
    entry["user_steps_from_full"] =
        run.user_steps_from_full ? Ordered(*run.user_steps_from_full) : Ordered(nullptr);
    entry["traps"] = counts_json(run.traps);
    entry["hypercalls"] = run.hypercalls;
    entry["call_outs"] = run.call_outs;
    entry["insn_emulation"] = run.insn_emulation;
    census.push_back(entry);
  }
  item["census"] = census;
  if (technique.hostile) {
    Ordered hostile;
    hostile["attempts"] = technique.hostile->attempts;
    hostile["as_expected"] = technique.hostile->as_expected;
    hostile["survived"] = technique.hostile->survived;
    hostile["integrity_violation"] = technique.hostile->integrity_violation;
    hostile["failure"] = technique.hostile->failure;
    item["hostile"] = hostile;
  } else {
    item["hostile"] = nullptr;
  }
  if (technique.dma) {
    Ordered dma;
    Ordered outcomes = Ordered::object();
    for (const auto& [target, outcome] : technique.dma->outcomes)
      outcomes[target] = outcome;
    dma["outcomes"] = outcomes;
    dma["survived"] = technique.dma->survived;
    dma["failure"] = technique.dma->failure;
    item["dma"] = dma;
  } else {
    item["dma"] = nullptr;
  }
  item["dma_missing"] = technique.dma_missing;
  return item;
}

std::vector<Comparison> read_comparisons(JsonReader& reader, const char* field,
                                         std::optional<Error>& error) {
  std::vector<Comparison> comparisons;
  const Json* list = reader.array(field);
  if (list == nullptr) return comparisons;
  for (std::size_t index = 0; index < list->size() && !error; ++index) {
    JsonReader item((*list)[index], reader.path() + field + "[" + std::to_string(index) + "].",
                    error);
    Comparison comparison;
    comparison.name = item.text("name");
    comparison.value = item.text("value");
    comparison.expected = item.text("expected");
    comparison.not_applicable = item.text("not_applicable");
    comparison.substitute = item.text("substitute");
    comparisons.push_back(std::move(comparison));
  }
  return comparisons;
}

std::map<std::string, std::uint64_t> read_counts(JsonReader& reader, const char* field,
                                                 std::optional<Error>& error) {
  std::map<std::string, std::uint64_t> counts;
  const Json* object = reader.object(field);
  if (object == nullptr) return counts;
  JsonReader item(*object, reader.path() + field + ".", error);
  for (auto entry = object->begin(); entry != object->end() && !error; ++entry) {
    counts[entry.key()] = item.count(entry.key().c_str());
  }
  return counts;
}

TechniqueEvidence read_technique(const Json& value, const std::string& path,
                                 std::optional<Error>& error) {
  JsonReader reader(value, path, error);
  TechniqueEvidence technique;
  technique.technique = reader.text("technique");
  technique.missing = reader.text("missing");
  technique.equivalence_missing = reader.text("equivalence_missing");
  technique.probes = read_comparisons(reader, "probes", error);
  technique.workloads = read_comparisons(reader, "workloads", error);
  technique.efficiency_missing = reader.text("efficiency_missing");
  if (const Json* census = reader.array("census")) {
    for (std::size_t index = 0; index < census->size() && !error; ++index) {
      JsonReader entry((*census)[index], path + "census[" + std::to_string(index) + "].", error);
      CensusRun run;
      run.workload = entry.text("workload");
      run.census.kernel_steps = entry.count("kernel_steps");
      run.census.user_steps = entry.count("user_steps");
      run.census.translated_steps = entry.count("translated_steps");
      run.census.user_mode_counted = entry.boolean("user_mode_counted");
      if (const Json* from_full = entry.find("user_steps_from_full");
          from_full != nullptr && !from_full->is_null()) {
        run.user_steps_from_full = entry.count("user_steps_from_full");
      }
      run.traps = read_counts(entry, "traps", error);
      run.hypercalls = entry.count("hypercalls");
      run.call_outs = entry.count("call_outs");
      run.insn_emulation = entry.count("insn_emulation");
      technique.census.push_back(std::move(run));
    }
  }
  if (const Json* hostile = reader.find("hostile"); hostile != nullptr && !hostile->is_null()) {
    JsonReader item(*hostile, path + "hostile.", error);
    HostileRun run;
    run.attempts = item.count("attempts");
    run.as_expected = item.count("as_expected");
    run.survived = item.boolean("survived");
    run.integrity_violation = item.text("integrity_violation");
    run.failure = item.text("failure");
    technique.hostile = run;
  }
  if (const Json* dma = reader.find("dma"); dma != nullptr && !dma->is_null()) {
    JsonReader item(*dma, path + "dma.", error);
    DmaRun run;
    if (const Json* outcomes = item.object("outcomes")) {
      JsonReader targets(*outcomes, path + "dma.outcomes.", error);
      for (auto entry = outcomes->begin(); entry != outcomes->end() && !error; ++entry) {
        run.outcomes[entry.key()] = targets.text(entry.key().c_str());
      }
    }
    run.survived = item.boolean("survived");
    run.failure = item.text("failure");
    technique.dma = run;
  }
  technique.dma_missing = reader.text("dma_missing");
  return technique;
}

}  // namespace

void write_scorecard_json(const ScorecardEvidence& evidence, std::ostream& out) {
  // The format first: an output that replaces a file checks its first bytes
  // (runner.cpp).
  Ordered document;
  document["format"] = kFormat;
  document["version"] = kVersion;
  document["platform"] = evidence.platform_line;
  document["backend"] = evidence.backend;
  document["date"] = evidence.date;
  Ordered techniques = Ordered::array();
  for (const auto& technique : evidence.techniques)
    techniques.push_back(technique_json(technique));
  document["techniques"] = techniques;
  // For readers only: a file read back is scored again from the evidence.
  Ordered scores = Ordered::array();
  for (const auto& row : score(evidence).rows) {
    Ordered item;
    item["technique"] = row.technique;
    item["missing"] = row.missing;
    item["equivalence"] = score_json(row.equivalence);
    item["efficiency"] = score_json(row.efficiency);
    item["safety"] = score_json(row.safety);
    scores.push_back(item);
  }
  document["scores"] = scores;
  out << document.dump(1) << "\n";
}

Result<ScorecardEvidence> parse_scorecard_json(std::string_view text) {
  auto document = parse_vmlab_document(text, kFormat, "vmlab scorecard --json", kVersion);
  if (!document) return document.error();
  std::optional<Error> error;
  JsonReader top(*document, "", error);
  ScorecardEvidence evidence;
  evidence.platform_line = top.text("platform");
  evidence.backend = top.text("backend");
  evidence.date = top.text("date");
  if (const Json* techniques = top.array("techniques")) {
    for (std::size_t index = 0; index < techniques->size() && !error; ++index) {
      evidence.techniques.push_back(read_technique(
          (*techniques)[index], "techniques[" + std::to_string(index) + "].", error));
    }
  }
  if (error) return *error;
  return evidence;
}

Result<ScorecardEvidence> read_scorecard_file(const std::string& path) {
  return read_and_parse_file(path, MeasureError::kUnreadable, "scorecard", parse_scorecard_json);
}

}  // namespace vmlab::measure
