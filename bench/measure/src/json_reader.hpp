// Reading vmlab's own JSON files (measurements.json, the scorecard) back:
// one object's fields at a time, the first problem kept with the path of the
// field at fault ("cells[3].status: is missing"), so that a corrupt or
// foreign file is one clear error instead of a crash or a silent zero.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "vmlab/measure/operations.hpp"
#include "vmlab/result.hpp"

namespace vmlab::measure {

class JsonReader {
 public:
  using Json = nlohmann::json;

  JsonReader(const Json& object, std::string path, std::optional<Error>& error)
      : m_object(object), m_path(std::move(path)), m_error(error) {}

  const Json* find(const char* name) {
    if (m_error) return nullptr;
    if (!m_object.is_object()) {
      fail(m_path.empty() ? "the document" : m_path, "should be an object");
      return nullptr;
    }
    auto found = m_object.find(name);
    if (found == m_object.end()) {
      fail(m_path + name, "is missing");
      return nullptr;
    }
    return &*found;
  }

  std::string text(const char* name) {
    const Json* value = find(name);
    if (value == nullptr) return {};
    if (!value->is_string()) {
      fail(m_path + name, "should be a string");
      return {};
    }
    return value->get<std::string>();
  }

  double number(const char* name) {
    const Json* value = find(name);
    if (value == nullptr) return 0;
    if (!value->is_number()) {
      fail(m_path + name, "should be a number");
      return 0;
    }
    return value->get<double>();
  }

  // A count: a whole number from 0 up.
  std::uint64_t count(const char* name) {
    const Json* value = find(name);
    if (value == nullptr) return 0;
    if (!value->is_number_unsigned()) {
      fail(m_path + name, "should be a whole number from 0 up");
      return 0;
    }
    return value->get<std::uint64_t>();
  }

  bool boolean(const char* name) {
    const Json* value = find(name);
    if (value == nullptr) return false;
    if (!value->is_boolean()) {
      fail(m_path + name, "should be true or false");
      return false;
    }
    return value->get<bool>();
  }

  const Json* array(const char* name) {
    const Json* value = find(name);
    if (value != nullptr && !value->is_array()) {
      fail(m_path + name, "should be an array");
      return nullptr;
    }
    return value;
  }

  const Json* object(const char* name) {
    const Json* value = find(name);
    if (value != nullptr && !value->is_object()) {
      fail(m_path + name, "should be an object");
      return nullptr;
    }
    return value;
  }

  const std::string& path() const { return m_path; }
  bool failed() const { return m_error.has_value(); }

  void fail(const std::string& where, const std::string& why) {
    if (!m_error) m_error = Error{MeasureError::kMalformed, where + ": " + why};
  }

 private:
  const Json& m_object;
  std::string m_path;
  std::optional<Error>& m_error;
};

// A document of one of vmlab's formats: parsed, its "format" and "version"
// checked (`writer`: what writes one, for the message).
inline Result<nlohmann::json> parse_vmlab_document(std::string_view text, std::string_view format,
                                                   std::string_view writer, int version) {
  nlohmann::json document;
  try {
    document = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& error) {
    return Error{MeasureError::kMalformed, std::string("not a JSON document: ") + error.what()};
  }
  std::optional<Error> error;
  JsonReader top(document, "", error);
  if (top.text("format") != format && !error) {
    return Error{MeasureError::kMalformed, "format: not a " + std::string(format) + " file (" +
                                               std::string(writer) + " writes one)"};
  }
  if (const double found = top.number("version"); !error && found != version) {
    return Error{MeasureError::kMalformed, "version: " + std::to_string(found) + " is not " +
                                               std::to_string(version) +
                                               ", the one this vmlab reads"};
  }
  if (error) return *error;
  return document;
}

}  // namespace vmlab::measure
