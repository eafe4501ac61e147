// Profiles: names, the file format and where the published ones live.
#include "vmlab/simulate/profile.hpp"
#include "vmlab/text_file.hpp"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

namespace vmlab::simulate {

namespace {

using Json = nlohmann::json;
using Ordered = nlohmann::ordered_json;

constexpr std::string_view kFormat = "vmlab-profile";
constexpr int kVersion = 1;

constexpr std::string_view kKindNames[] = {"hardware", "binary-translation", "calibrated"};

constexpr std::string_view kFeatureNames[] = {
    "nested-paging",       "tagged-tlb",        "tpr-shadow",
    "apic-virtualization", "posted-interrupts", "iommu",
};

constexpr std::string_view kTransitionNames[] = {
    "io-exit",
    "mmio-exit",
    "hlt-exit",
    "cpuid-exit",
    "msr-exit",
    "cr-exit",
    "cr3-exit",
    "invlpg-exit",
    "page-fault-exit",
    "hidden-page-fault-exit",
    "pte-write-exit",
    "interrupt-exit",
    "interrupt-window-exit",
    "eoi-exit",
    "hypercall-exit",
    "other-exit",
    "guest-exception",
    "bt-inline",
    "bt-callout",
    "bt-io",
    "bt-system-call",
    "bt-page-fault",
    "bt-hidden-page-fault",
    "bt-pte-write",
    "bt-exception",
    "bt-interrupt",
    "bt-translate-block",
    "bt-indirect-miss",
};
static_assert(std::size(kTransitionNames) == static_cast<std::size_t>(Transition::Count));

constexpr std::string_view kBases[] = {"measured", "derived", "estimate", "calibrated"};

Error malformed(const std::string& where, const std::string& why) {
  return Error{SimulateError::kMalformedProfile, where + ": " + why};
}

// One cost object: {"cycles" or "ns", "basis", "source", "note"}.
Result<Cost> read_cost(const Json& value, const std::string& where, const Profile& profile) {
  if (!value.is_object()) return malformed(where, "should be an object");
  Cost cost;
  for (const char* unit : {"cycles", "ns"}) {
    auto found = value.find(unit);
    if (found == value.end() || found->is_null()) continue;
    if (!found->is_number() || found->get<double>() < 0) {
      return malformed(where + "." + unit, "should be a number from 0 up, or null");
    }
    (std::string_view(unit) == "cycles" ? cost.cycles : cost.ns) = found->get<double>();
  }
  if (cost.cycles && cost.ns) return malformed(where, "gives both cycles and ns: give one");
  auto text = [&](const char* field, std::string& into) -> Status {
    auto found = value.find(field);
    if (found == value.end() || !found->is_string()) {
      return malformed(where + "." + field, "should be a string");
    }
    into = found->get<std::string>();
    return {};
  };
  for (auto [field, into] : {std::pair{"basis", &cost.basis}, std::pair{"source", &cost.source},
                             std::pair{"note", &cost.note}}) {
    if (auto read = text(field, *into); !read) return read.error();
  }
  if (std::find(std::begin(kBases), std::end(kBases), cost.basis) == std::end(kBases)) {
    return malformed(where + ".basis",
                     "'" + cost.basis + "' is not measured, derived, estimate or calibrated");
  }
  if (profile.sources.count(cost.source) == 0) {
    return malformed(where + ".source", "'" + cost.source + "' is not one of the file's sources");
  }
  if (!cost.cycles && !cost.ns && cost.note.empty()) {
    return malformed(where, "has no figure and no note saying why");
  }
  return cost;
}

Ordered cost_json(const Cost& cost) {
  Ordered item;
  if (cost.cycles) item["cycles"] = *cost.cycles;
  if (cost.ns) item["ns"] = *cost.ns;
  if (!cost.cycles && !cost.ns) item["cycles"] = nullptr;
  item["basis"] = cost.basis;
  item["source"] = cost.source;
  item["note"] = cost.note;
  return item;
}

}  // namespace

std::string_view platform_kind_name(PlatformKind kind) {
  return kKindNames[static_cast<std::size_t>(kind)];
}

std::string_view feature_name(Feature feature) {
  return kFeatureNames[static_cast<std::size_t>(feature)];
}

std::optional<Feature> parse_feature(std::string_view name) {
  for (std::size_t index = 0; index < std::size(kFeatureNames); ++index) {
    if (kFeatureNames[index] == name) return static_cast<Feature>(index);
  }
  return std::nullopt;
}

std::string_view transition_name(Transition transition) {
  return kTransitionNames[static_cast<std::size_t>(transition)];
}

std::optional<Transition> parse_transition(std::string_view name) {
  for (std::size_t index = 0; index < std::size(kTransitionNames); ++index) {
    if (kTransitionNames[index] == name) return static_cast<Transition>(index);
  }
  return std::nullopt;
}

bool transition_belongs_to(Transition transition, PlatformKind kind) {
  const bool translator = static_cast<int>(transition) >= static_cast<int>(Transition::BtInline);
  switch (kind) {
    case PlatformKind::Hardware:
      return !translator;
    case PlatformKind::BinaryTranslation:
      return translator;
    case PlatformKind::Calibrated:
      return false;
  }
  return false;
}

bool transition_replaces_instruction(Transition transition) {
  switch (transition) {
    case Transition::PageFaultExit:
    case Transition::HiddenPageFaultExit:
    case Transition::InterruptExit:
    case Transition::InterruptWindowExit:
    case Transition::GuestException:
    case Transition::BtSystemCall:
    case Transition::BtPageFault:
    case Transition::BtHiddenPageFault:
    case Transition::BtException:
    case Transition::BtInterrupt:
    case Transition::BtTranslateBlock:
    case Transition::BtIndirectMiss:
    case Transition::Count:
      return false;
    case Transition::IoExit:
    case Transition::MmioExit:
    case Transition::HltExit:
    case Transition::CpuidExit:
    case Transition::MsrExit:
    case Transition::CrExit:
    case Transition::Cr3Exit:
    case Transition::InvlpgExit:
    case Transition::PteWriteExit:
    case Transition::EoiExit:
    case Transition::HypercallExit:
    case Transition::OtherExit:
    case Transition::BtInline:
    case Transition::BtCallout:
    case Transition::BtIo:
    case Transition::BtPteWrite:
      return true;
  }
  return false;
}

std::optional<double> Profile::ns(const Cost& cost) const {
  if (cost.ns) return *cost.ns;
  if (cost.cycles && clock_ghz > 0) return *cost.cycles / clock_ghz;
  return std::nullopt;
}

Result<Profile> parse_profile(std::string_view text) {
  Json document;
  try {
    document = Json::parse(text);
  } catch (const Json::parse_error& error) {
    return Error{SimulateError::kMalformedProfile,
                 std::string("not a JSON document: ") + error.what()};
  }
  if (!document.is_object()) return malformed("the document", "should be an object");
  auto string_field = [&](const char* field, std::string& into) -> Status {
    auto found = document.find(field);
    if (found == document.end() || !found->is_string()) {
      return malformed(field, "should be a string");
    }
    into = found->get<std::string>();
    return {};
  };
  std::string format;
  if (auto read = string_field("format", format); !read || format != kFormat) {
    return malformed("format", "not a vmlab-profile file");
  }
  if (auto version = document.find("version"); version == document.end() ||
                                               !version->is_number_integer() ||
                                               version->get<int>() != kVersion) {
    return malformed("version", "is not 1, the one this vmlab reads");
  }
  Profile profile;
  std::string kind;
  for (auto [field, into] : {std::pair{"name", &profile.name}, std::pair{"title", &profile.title},
                             std::pair{"kind", &kind}, std::pair{"cpu", &profile.cpu}}) {
    if (auto read = string_field(field, *into); !read) return read.error();
  }
  if (profile.name.empty() || profile.name.find_first_not_of(
                                  "abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos) {
    return malformed("name", "'" + profile.name + "' is not lower-case letters, digits and -");
  }
  const auto* kind_name = std::find(std::begin(kKindNames), std::end(kKindNames), kind);
  if (kind_name == std::end(kKindNames)) {
    return malformed("kind", "'" + kind + "' is not hardware, binary-translation or calibrated");
  }
  profile.kind = static_cast<PlatformKind>(kind_name - std::begin(kKindNames));
  if (auto backend = document.find("backend"); backend != document.end()) {
    if (!backend->is_string()) return malformed("backend", "should be a string");
    profile.backend = backend->get<std::string>();
  }
  auto clock = document.find("clock_ghz");
  if (clock == document.end() || !clock->is_number() || clock->get<double>() <= 0 ||
      clock->get<double>() > 20) {
    return malformed("clock_ghz", "should be a number above 0 and at most 20");
  }
  profile.clock_ghz = clock->get<double>();
  auto features = document.find("features");
  if (features == document.end() || !features->is_array()) {
    return malformed("features", "should be an array of feature names");
  }
  for (const auto& item : *features) {
    auto feature = item.is_string() ? parse_feature(item.get<std::string>()) : std::nullopt;
    if (!feature) return malformed("features", item.dump() + " is not a feature");
    profile.features.insert(*feature);
  }
  auto sources = document.find("sources");
  if (sources == document.end() || !sources->is_object() || sources->empty()) {
    return malformed("sources", "should be an object of citations, one at least");
  }
  for (auto item = sources->begin(); item != sources->end(); ++item) {
    if (!item->is_string() || item->get<std::string>().empty()) {
      return malformed("sources." + item.key(), "should be a citation");
    }
    profile.sources[item.key()] = item->get<std::string>();
  }
  auto costs = document.find("costs");
  if (costs == document.end() || !costs->is_object()) {
    return malformed("costs", "should be an object");
  }
  for (auto item = costs->begin(); item != costs->end(); ++item) {
    const std::string where = "costs." + item.key();
    if (profile.kind == PlatformKind::Calibrated) {
      // "technique class": the calibrated cost of one class of event.
      const std::size_t space = item.key().find(' ');
      if (space == std::string::npos) return malformed(where, "should be 'TECHNIQUE CLASS'");
      auto cost = read_cost(item.value(), where, profile);
      if (!cost) return cost.error();
      profile.calibrated[item.key().substr(0, space)][item.key().substr(space + 1)] = *cost;
      continue;
    }
    auto transition = parse_transition(item.key());
    if (!transition || !transition_belongs_to(*transition, profile.kind)) {
      return malformed(where, "is not a transition of a " + kind + " platform");
    }
    auto cost = read_cost(item.value(), where, profile);
    if (!cost) return cost.error();
    profile.costs[*transition] = *cost;
  }
  if (auto native = document.find("native_operations"); native != document.end()) {
    if (!native->is_object()) return malformed("native_operations", "should be an object");
    for (auto item = native->begin(); item != native->end(); ++item) {
      auto cost = read_cost(item.value(), "native_operations." + item.key(), profile);
      if (!cost) return cost.error();
      profile.native_operations[item.key()] = *cost;
    }
  }
  return profile;
}

void write_profile(const Profile& profile, std::ostream& out) {
  Ordered document;
  document["format"] = kFormat;
  document["version"] = kVersion;
  document["name"] = profile.name;
  document["title"] = profile.title;
  document["kind"] = platform_kind_name(profile.kind);
  document["cpu"] = profile.cpu;
  if (!profile.backend.empty()) document["backend"] = profile.backend;
  document["clock_ghz"] = profile.clock_ghz;
  Ordered features = Ordered::array();
  for (auto feature : profile.features)
    features.push_back(feature_name(feature));
  document["features"] = features;
  Ordered sources = Ordered::object();
  for (const auto& [key, citation] : profile.sources)
    sources[key] = citation;
  document["sources"] = sources;
  Ordered costs = Ordered::object();
  for (const auto& [transition, cost] : profile.costs)
    costs[std::string(transition_name(transition))] = cost_json(cost);
  for (const auto& [technique, classes] : profile.calibrated) {
    for (const auto& [event_class, cost] : classes)
      costs[technique + " " + event_class] = cost_json(cost);
  }
  document["costs"] = costs;
  if (!profile.native_operations.empty()) {
    Ordered native = Ordered::object();
    for (const auto& [operation, cost] : profile.native_operations)
      native[operation] = cost_json(cost);
    document["native_operations"] = native;
  }
  out << document.dump(1) << "\n";
}

Result<Profile> read_profile_file(const std::string& path) {
  return read_and_parse_file(path, SimulateError::kUnreadable, "profile", parse_profile);
}

std::string default_profile_directory() {
  return VMLAB_PROFILE_DIRECTORY;
}

std::vector<std::string> profile_names(const std::string& directory) {
  const std::filesystem::path folder = directory.empty() ? default_profile_directory() : directory;
  std::vector<std::string> names;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(folder, error)) {
    if (entry.path().extension() == ".json") names.push_back(entry.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::optional<Profile> find_host_profile(const std::string& platform_line,
                                         const std::string& directory) {
  for (const auto& name : profile_names(directory)) {
    auto profile = find_profile(name, directory);
    if (!profile || profile->kind != PlatformKind::Calibrated || profile->backend.empty()) continue;
    if (platform_line.find("platform: " + profile->backend + " ") == 0 &&
        platform_line.find(" on " + profile->cpu + ",") != std::string::npos) {
      return *profile;
    }
  }
  return std::nullopt;
}

Result<Profile> find_profile(const std::string& name_or_path, const std::string& directory) {
  const bool is_path =
      name_or_path.find('/') != std::string::npos ||
      (name_or_path.size() > 5 && name_or_path.compare(name_or_path.size() - 5, 5, ".json") == 0);
  if (is_path) return read_profile_file(name_or_path);
  const auto names = profile_names(directory);
  if (std::find(names.begin(), names.end(), name_or_path) == names.end()) {
    std::string list;
    for (const auto& name : names)
      list += (list.empty() ? "" : ", ") + name;
    return Error{SimulateError::kUnknownProfile, "'" + name_or_path + "' is not one of " +
                                                     (list.empty() ? "(none)" : list) +
                                                     " (or give a profile file's path)"};
  }
  const std::filesystem::path folder = directory.empty() ? default_profile_directory() : directory;
  auto profile = read_profile_file((folder / (name_or_path + ".json")).string());
  if (profile && profile->name != name_or_path) {
    return Error{SimulateError::kMalformedProfile,
                 name_or_path + ".json: its name is '" + profile->name + "'"};
  }
  return profile;
}

}  // namespace vmlab::simulate
