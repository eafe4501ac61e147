#include "cli11_options.hpp"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <sstream>

#include "vmlab/format.hpp"

namespace vmlab::cli {

std::string wrap_hanging(std::string_view line, std::size_t width, std::size_t indent) {
  std::string wrapped;
  std::size_t column = indent;
  bool line_started = false;
  std::size_t position = 0;
  while (position < line.size()) {
    const std::size_t start = line.find_first_not_of(' ', position);
    if (start == std::string_view::npos) break;
    const std::size_t end = std::min(line.find(' ', start), line.size());
    const std::string_view word = line.substr(start, end - start);
    if (line_started && column + 1 + word.size() > width) {
      wrapped += '\n';
      wrapped.append(indent, ' ');
      column = indent;
    } else if (line_started) {
      wrapped += ' ';
      ++column;
    }
    wrapped += word;
    column += word.size();
    line_started = true;
    position = end;
  }
  return wrapped;
}

std::string wrap(std::string_view text, std::size_t width) {
  std::string wrapped;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = std::min(text.find('\n', start), text.size());
    const std::string_view line = text.substr(start, end - start);
    if (start != 0) wrapped += '\n';
    wrapped +=
        !line.empty() && line.front() == ' ' ? std::string(line) : wrap_hanging(line, width, 0);
    start = end + 1;
  }
  return wrapped;
}

HelpFormatter::HelpFormatter(const std::string& subcommand_label) {
  column_width(kHelpColumn);
  label("SUBCOMMAND", subcommand_label);
}

std::string HelpFormatter::make_help(const CLI::App* app, std::string name,
                                     CLI::AppFormatMode mode) const {
  if (mode == CLI::AppFormatMode::Sub) return make_expanded(app);
  std::string help = make_usage(app, std::move(name));
  // The description's first line is the summary a list of commands shows;
  // the rest, a paragraph of its own.
  const std::string& description = app->get_description();
  if (!description.empty()) {
    const std::size_t end = std::min(description.find('\n'), description.size());
    help += "\n" + wrap(description.substr(0, end), kHelpWidth) + "\n";
    if (end < description.size())
      help += "\n" + wrap(description.substr(end + 1), kHelpWidth) + "\n";
  }
  help += make_positionals(app);
  help += make_groups(app, mode);
  help += make_subcommands(app, mode);
  while (!help.empty() && help.back() == '\n')
    help.pop_back();
  help += '\n';
  if (!app->get_footer().empty()) help += "\n" + app->get_footer() + "\n";
  return help;
}

std::string HelpFormatter::make_subcommand(const CLI::App* subcommand) const {
  const std::string& description = subcommand->get_description();
  std::stringstream out;
  CLI::detail::format_help(out, subcommand->get_display_name(),
                           wrap(description.substr(0, description.find('\n'))), get_column_width());
  return out.str();
}

CLI::App* add_command(CLI::App& parent, const std::string& name, const std::string& description) {
  CLI::App* command = parent.add_subcommand(name, description);
  command->allow_extras();
  return command;
}

void list_as_actions(CLI::App& command) {
  command.formatter(std::make_shared<HelpFormatter>("ACTION"));
  for (CLI::App* action : command.get_subcommands([](CLI::App*) { return true; }))
    action->group("Actions");
}

std::string describe_choices(
    std::string_view description,
    const std::vector<std::pair<std::string_view, std::string_view>>& names_and_meanings) {
  std::size_t longest = 0;
  for (const auto& [name, meaning] : names_and_meanings)
    longest = std::max(longest, name.size());
  const std::size_t indent = 2 + longest + 2;
  std::string text = wrap(description);
  for (const auto& [name, meaning] : names_and_meanings) {
    std::string line = "  " + std::string(name);
    line.append(indent - line.size(), ' ');
    text += "\n" + line + wrap_hanging(meaning, kDescriptionWidth, indent);
  }
  return text;
}

std::string seconds_text(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", seconds);
  return text;
}

std::string command_name(const CLI::App& command) {
  // The App itself (vmlab) has no parent and no place in the name.
  if (command.get_parent() == nullptr) return {};
  std::string name = command_name(*command.get_parent());
  if (!name.empty()) name += ' ';
  name += command.get_name();
  return name;
}

Status refuse_unexpected_arguments(const CLI::App& command) {
  const std::vector<std::string> extras = command.remaining();
  if (extras.empty()) return {};
  for (const auto& extra : extras) {
    if (extra.size() > 1 && extra[0] == '-') {
      return Error{CliError::kUsage, "unknown option " + single_quoted(extra)};
    }
  }
  const std::string& operand = extras[0];
  // A command made of commands or actions: the operand names none of them.
  const auto subcommands = command.get_subcommands([](const CLI::App*) { return true; });
  if (!subcommands.empty()) {
    if (command.get_parent() == nullptr) {
      return Error{CliError::kUsage, "unknown command " + single_quoted(operand)};
    }
    std::string actions;
    for (const CLI::App* action : subcommands)
      actions += (actions.empty() ? "" : " or ") + action->get_name();
    return Error{CliError::kUsage, "unknown " + command_name(command) + " action " +
                                       single_quoted(operand) + ": " + actions};
  }
  std::string takes;
  for (const CLI::Option* option :
       command.get_options([](const CLI::Option* option) { return option->get_positional(); })) {
    takes += (takes.empty() ? "" : " and ") + option->get_name(true);
  }
  if (takes.empty()) {
    return Error{CliError::kUsage,
                 command_name(command) + " takes options only, not " + single_quoted(operand)};
  }
  return Error{CliError::kUsage,
               command_name(command) + " takes " + takes + ", not also " + single_quoted(operand)};
}

Result<const CLI::App*> parsed_action(const CLI::App& command) {
  if (auto extra = refuse_unexpected_arguments(command); !extra) return extra.error();
  if (const auto parsed = command.get_subcommands(); !parsed.empty()) {
    return static_cast<const CLI::App*>(parsed.front());
  }
  std::string actions;
  for (const CLI::App* action : command.get_subcommands([](const CLI::App*) { return true; }))
    actions += (actions.empty() ? "" : " or ") + action->get_name();
  return Error{CliError::kUsage, command_name(command) + " needs an action: " + actions};
}

}  // namespace vmlab::cli
