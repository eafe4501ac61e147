// How the value parsers of options.hpp are wired into CLI11, and what every
// command's parser shares: its help layout and how it refuses arguments
// nobody asked for.
#pragma once

#include <CLI/CLI.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "vmlab/options.hpp"
#include "vmlab/result.hpp"

namespace vmlab::cli {

// The help's layout: option names in the first kHelpColumn columns, their
// descriptions wrapped to the rest of kHelpWidth.
inline constexpr std::size_t kHelpWidth = 80;
inline constexpr std::size_t kHelpColumn = 24;
inline constexpr std::size_t kDescriptionWidth = kHelpWidth - kHelpColumn;

// `text` wrapped at word boundaries to lines of at most `width` columns. A
// line that starts with a space is taken as laid out already (a table) and
// kept as it is.
std::string wrap(std::string_view text, std::size_t width = kDescriptionWidth);
// One line of text wrapped to `width` columns, its first word at column
// `indent` (the caller put something before it) and each following line
// starting with `indent` spaces.
std::string wrap_hanging(std::string_view line, std::size_t width, std::size_t indent);

// CLI11's help with the usage line first, then the description, then the
// options; a subcommand in a list shows the first line of its description.
// The usage line calls subcommands `subcommand_label`: COMMAND for vmlab's,
// ACTION for those of trace and disk.
class HelpFormatter : public CLI::Formatter {
 public:
  explicit HelpFormatter(const std::string& subcommand_label = "COMMAND");
  std::string make_help(const CLI::App* app, std::string name,
                        CLI::AppFormatMode mode) const override;
  std::string make_subcommand(const CLI::App* subcommand) const override;
};

// A command or an action of vmlab: `parent`'s subcommand `name`, which lets
// CLI11 leave what it cannot place for refuse_unexpected_arguments to name.
// The description's first line is the summary a list of commands shows.
CLI::App* add_command(CLI::App& parent, const std::string& name, const std::string& description);

// Shows `command`'s subcommands as its actions (trace summary, disk
// create) in its help; call it once they are added.
void list_as_actions(CLI::App& command);

// A required operand (positional argument) of `command`: NAME in the usage
// line, `description` in the help.
template <typename Target>
CLI::Option* add_operand(CLI::App& command, const std::string& name, Target& target,
                         const std::string& description) {
  return command.add_option(name, target, wrap(description))->required()->type_name("");
}

// Adds an option (or, for a name without dashes, a positional argument)
// whose text `parse`, one of the project's parsers, turns into `target`.
// CLI11 runs `parse` as the option's validator, so a bad value is a usage
// error that names the option and says what parse said ("--mem: '64X' is
// not a size: ..."); the option's callback then stores the value. The value
// is parsed twice, by the same function: the validator cannot hand CLI11 a
// typed value.
template <typename Target, typename Parse>
CLI::Option* add_parsed_option(CLI::App& command, const std::string& names, Target& target,
                               Parse parse, const std::string& value_name,
                               const std::string& description) {
  CLI::Option* option = command.add_option_function<std::string>(
      names, [&target, parse](const std::string& text) { target = *parse(text); },
      wrap(description));
  option->check(CLI::Validator(
      [parse](std::string& text) {
        auto parsed = parse(text);
        return parsed ? std::string() : parsed.error().message;
      },
      std::string()));
  option->type_name(value_name);
  return option;
}

// `description`, then one line per choice with what it means.
std::string describe_choices(
    std::string_view description,
    const std::vector<std::pair<std::string_view, std::string_view>>& names_and_meanings);

template <typename Value>
std::string describe_choices(std::string_view description, std::span<const Choice<Value>> choices) {
  std::vector<std::pair<std::string_view, std::string_view>> names_and_meanings;
  for (const auto& choice : choices)
    names_and_meanings.emplace_back(choice.name, choice.meaning);
  return describe_choices(description, names_and_meanings);
}

// "30", "0.5": seconds as the help shows them.
std::string seconds_text(double seconds);

// The spelling of `value` in `choices`, for "(default: ...)" in the help.
template <typename Value>
std::string_view choice_name(std::span<const Choice<Value>> choices, const Value& value) {
  for (const auto& choice : choices) {
    if (choice.value == value) return choice.name;
  }
  return "?";
}

// An enumerated option, shown as "--cpu hvm|full|bt|para": one of `choices`,
// each listed under the description with what it means. `target` gets the
// choice's value, or its name if it holds names (RunOptions::disk_model).
template <typename Target, typename Value>
CLI::Option* add_choice_option(CLI::App& command, const std::string& names, Target& target,
                               std::span<const Choice<Value>> choices,
                               std::string_view description) {
  std::string value_name;
  for (const auto& choice : choices) {
    if (!value_name.empty()) value_name += '|';
    value_name += choice.name;
  }
  auto parse = [choices](std::string_view text) -> Result<Target> {
    auto value = parse_choice(choices, text);
    if (!value) return value.error();
    if constexpr (std::is_assignable_v<Target&, const Value&>) {
      return Target(*value);
    } else {
      return Target(text);
    }
  };
  CLI::Option* option = add_parsed_option(command, names, target, parse, value_name, "");
  option->description(describe_choices(description, choices));
  return option;
}

// The command's name under vmlab: "run", "trace export".
std::string command_name(const CLI::App& command);

// Refuses what CLI11 left over (the commands allow extras, so that the
// message is theirs): the first unknown option, or else the first operand
// the command has no place for, or that names none of its commands or
// actions; a CliError::kUsage.
Status refuse_unexpected_arguments(const CLI::App& command);

// For a command made of actions (trace summary|export, disk create|info):
// the action CLI11 parsed, or the usage error (kUsage: an unknown action or
// option, or no action at all).
Result<const CLI::App*> parsed_action(const CLI::App& command);

}  // namespace vmlab::cli
