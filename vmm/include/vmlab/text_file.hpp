// A file of vmlab's own (a profile, a scorecard, a comparison, the suite's
// results) read whole and parsed, with one kind of error for a file that
// cannot be read and the parser's own, each naming the file.
#pragma once

#include <cerrno>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "vmlab/result.hpp"

namespace vmlab {

// `parse` of the file's whole text; `unreadable` (with errno) when it cannot
// be opened or read; `what` names the file for people ("profile").
template <typename Kind, typename Parse>
auto read_and_parse_file(const std::string& path, Kind unreadable, std::string_view what,
                         Parse parse) -> decltype(parse(std::string_view{})) {
  std::ifstream file(path);
  if (!file) {
    return Error::from_errno(unreadable, "cannot open " + std::string(what) + " " + path, errno);
  }
  std::stringstream text;
  text << file.rdbuf();
  if (file.bad()) {
    return Error::from_errno(unreadable, "cannot read " + std::string(what) + " " + path, errno);
  }
  auto parsed = parse(text.str());
  if (!parsed) return Error{parsed.error().kind, path + ": " + parsed.error().message};
  return parsed;
}

}  // namespace vmlab
