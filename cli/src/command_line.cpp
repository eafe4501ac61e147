// The one vmlab App: a CLI11 subcommand per command (commands/), parsed into
// the typed Command, which dispatch() hands to the command's execute().
#include "vmlab/command_line.hpp"

#include <cstdio>
#include <memory>
#include <regex>
#include <type_traits>
#include <variant>

#include "commands/cli11_options.hpp"
#include "commands/commands.hpp"
#include "vmlab/format.hpp"

namespace vmlab::cli {

namespace {

constexpr const char* kVersion = "vmlab 0.1.0";

// exit_status in runner.hpp; `vmlab run --help` says what a guest's status
// becomes.
constexpr const char* kExitStatusHelp =
    "exit status: 0 done; 64 a usage error (nothing ran); 69 KVM, the guest or an\n"
    "  input file unusable; 70 a guest crashed (compare: a run failed); 71 a VMM\n"
    "  error; 74 an output not written; 124 a timeout. `vmlab run` exits with its\n"
    "  guest's status when the guest exits (see `vmlab run --help`).";

// The deepest subcommand the App parsed: the command a usage error belongs
// to, whose --help the message points to.
const CLI::App& parsed_command(const CLI::App& app) {
  const auto parsed = app.get_subcommands();
  return parsed.empty() ? app : parsed_command(*parsed.front());
}

// `error` pointing to the --help of `command`, the command it belongs to.
Error with_help_hint(const Error& error, const CLI::App& command) {
  const std::string name = command_name(command);
  return Error{error.kind,
               error.message + "; see 'vmlab " + (name.empty() ? "" : name + " ") + "--help'",
               error.system_errno};
}

// A value one of options.hpp's parsers refused, as the validator of an
// add_parsed_option (the only validators vmlab gives CLI11), is a
// kInvalidValue; whatever else CLI11 refuses is the command line's shape.
CliError parse_error_kind(const CLI::ParseError& error) {
  return dynamic_cast<const CLI::ValidationError*>(&error) != nullptr ? CliError::kInvalidValue
                                                                      : CliError::kUsage;
}

// A CLI11 error in vmlab's words where CLI11's are known, else CLI11's own.
std::string parse_error_message(const CLI::ParseError& error) {
  std::string message = error.what();
  if (dynamic_cast<const CLI::ArgumentMismatch*>(&error) != nullptr) {
    // ArgumentMismatch::TypedAtLeast, an option last on the line: "--trace:
    // 1 required FILE missing".
    static const std::regex missing_value(R"(^(\S+): [0-9]+ required .* missing$)");
    std::smatch match;
    if (std::regex_match(message, match, missing_value)) return match[1].str() + " needs a value";
  }
  return message;
}

// `vmlab help [COMMAND [ACTION]]`: the help of vmlab or of one command.
Subcommand add_help_command(CLI::App& vmlab) {
  CLI::App* help =
      vmlab.add_subcommand("help", "show this text, or a command's (also: vmlab COMMAND --help)");
  help->allow_extras();
  auto words = std::make_shared<std::vector<std::string>>();
  help->add_option("COMMAND", *words, wrap("a command, and an action of it: help trace export"))
      ->type_name("");
  return {help, [&vmlab, help, words]() -> Result<Command> {
            if (auto extra = refuse_unexpected_arguments(*help); !extra) return extra.error();
            const CLI::App* target = &vmlab;
            for (const auto& word : *words) {
              const auto found = target->get_subcommands([&word, help](const CLI::App* sub) {
                return sub != help && sub->get_name() == word;
              });
              if (found.empty()) {
                return Error{CliError::kUsage, target == &vmlab
                                                   ? "unknown command " + single_quoted(word)
                                                   : "unknown " + command_name(*target) +
                                                         " action " + single_quoted(word)};
              }
              target = found.front();
            }
            // Not target->help(), which shows the help of the subcommand the
            // App parsed: `help` itself.
            const std::string name = command_name(*target);
            return Command{HelpText{target->get_formatter()->make_help(
                target, name.empty() ? "vmlab" : "vmlab " + name, CLI::AppFormatMode::Normal)}};
          }};
}

}  // namespace

Result<Command> parse_command_line(const std::vector<std::string>& arguments) {
  CLI::App vmlab(
      "vmlab: CPU virtualization techniques side by side on the Linux KVM API\n"
      "Run `vmlab COMMAND --help` (or `vmlab help COMMAND`) for a command's options.",
      "vmlab");
  vmlab.formatter(std::make_shared<HelpFormatter>());
  vmlab.set_help_flag("-h,--help", "show this help and exit");
  vmlab.set_version_flag("--version", kVersion, "show vmlab's version and exit");
  // An option given twice: the last one counts, as in most Unix tools.
  vmlab.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  vmlab.allow_extras();  // named by the message below, not as CLI11's "extras"
  // One command per line: a later word that names another command (`vmlab
  // run compare`) is an operand, not a second command.
  vmlab.require_subcommand(0, 1);

  // In the order `vmlab --help` lists them; `help` last.
  const std::vector<Subcommand> commands = {
      add_compare_command(vmlab),  add_report_command(vmlab),    add_scorecard_command(vmlab),
      add_simulate_command(vmlab), add_calibrate_command(vmlab), add_probe_command(vmlab),
      add_run_command(vmlab),      add_trace_command(vmlab),     add_info_command(vmlab),
      add_disk_command(vmlab),     add_help_command(vmlab),
  };
  for (const auto& command : commands)
    command.app->group("Commands");
  // Set after the commands are added, which would inherit it.
  vmlab.footer(kExitStatusHelp);

  try {
    // CLI11 takes the arguments last first.
    vmlab.parse(std::vector<std::string>(arguments.rbegin(), arguments.rend()));
  } catch (const CLI::CallForHelp&) {
    return Command{HelpText{vmlab.help()}};
  } catch (const CLI::CallForVersion& version) {
    return Command{HelpText{std::string(version.what()) + "\n"}};
  } catch (const CLI::ParseError& error) {
    return with_help_hint(Error{parse_error_kind(error), parse_error_message(error)},
                          parsed_command(vmlab));
  }

  if (auto extra = refuse_unexpected_arguments(vmlab); !extra) {
    return with_help_hint(extra.error(), vmlab);
  }
  for (const auto& command : commands) {
    if (!command.app->parsed()) continue;
    auto parsed = command.finish();
    if (!parsed) {
      // `vmlab help frob`: the list of commands is vmlab's help.
      const bool help = command.app == commands.back().app;
      return with_help_hint(parsed.error(), help ? vmlab : parsed_command(vmlab));
    }
    return parsed;
  }
  // No command: the overview, as a usage error.
  return Command{HelpText{vmlab.help(), true}};
}

Result<Command> finish_with(const CLI::App& app, Command command) {
  if (auto extra = refuse_unexpected_arguments(app); !extra) return extra.error();
  return command;
}

Subcommand command_of_actions(CLI::App* command, std::vector<Subcommand> actions) {
  command->require_subcommand(0, 1);  // at most one; parsed_action refuses none
  list_as_actions(*command);
  return {command, [command, actions = std::move(actions)]() -> Result<Command> {
            auto action = parsed_action(*command);
            if (!action) return action.error();
            for (const auto& candidate : actions) {
              if (candidate.app == *action) return candidate.finish();
            }
            return Error{CliError::kUsage, command_name(*command) + " has no action " +
                                               single_quoted((*action)->get_name())};
          }};
}

int dispatch(const Command& command) {
  return std::visit(
      [](const auto& chosen) -> int {
        if constexpr (std::is_same_v<std::decay_t<decltype(chosen)>, HelpText>) {
          std::fputs(chosen.text.c_str(), chosen.usage_error ? stderr : stdout);
          return chosen.usage_error ? exit_status::kUsage : 0;
        } else {
          return execute(chosen);  // commands.hpp: one overload per command
        }
      },
      command);
}

int run_command_line(const std::vector<std::string>& arguments) {
  auto command = parse_command_line(arguments);
  if (!command) {
    report_error(command.error().message);
    return exit_status::kUsage;
  }
  return dispatch(*command);
}

void report_error(const std::string& message) {
  std::fprintf(stderr, "vmlab: %s\n", message.c_str());
}

}  // namespace vmlab::cli
