// Reading vmlab's own JSON files (measurements.json, the scorecard) back:
// one object's fields at a time, the first problem kept with the path of the
// field at fault ("cells[3].status: is missing"), so that a corrupt or
// foreign file is one clear error instead of a crash or a silent zero.
#pragma once

#include <cerrno>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
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

// A file's whole text, and `parse` of it; errors name the file (`what`:
// "results", "scorecard").
template <typename Parse>
auto read_json_file(const std::string& path, const char* what, Parse parse)
    -> decltype(parse(std::string_view{})) {
  std::ifstream file(path);
  if (!file) {
    return Error::from_errno(MeasureError::kUnreadable,
                             std::string("cannot open ") + what + " " + path, errno);
  }
  std::stringstream text;
  text << file.rdbuf();
  if (file.bad()) {
    return Error::from_errno(MeasureError::kUnreadable,
                             std::string("cannot read ") + what + " " + path, errno);
  }
  auto parsed = parse(text.str());
  if (!parsed) return Error{parsed.error().kind, path + ": " + parsed.error().message};
  return parsed;
}

}  // namespace vmlab::measure
