// `vmlab disk create|info`: raw disk images for `vmlab run --disk`.
#include <cstdio>
#include <memory>

#include "cli11_options.hpp"
#include "commands.hpp"
#include "vmlab/devices/raw_image_file.hpp"

namespace vmlab::cli {

Subcommand add_disk_command(CLI::App& vmlab) {
  CLI::App* disk = vmlab.add_subcommand("disk", "create a raw disk image, or show one's size");
  disk->allow_extras();
  disk->require_subcommand(0, 1);  // one action

  CLI::App* create = disk->add_subcommand(
      "create",
      "make PATH a sparse raw disk image of SIZE bytes\n"
      "The image reads as zeros and takes no host space until written. An existing file is "
      "replaced only with --force, and never while a VM is using it.");
  create->allow_extras();
  auto create_command = std::make_shared<DiskCreateCommand>();
  create->add_option("PATH", create_command->path, wrap("the image file"))
      ->required()
      ->type_name("");
  add_parsed_option(*create, "SIZE", create_command->size_bytes, parse_disk_size, "",
                    "a whole number of 512-byte sectors, in bytes or binary units, the same "
                    "sizes as `vmlab run --mem`: 512, 64K, 64M, 64MiB, 2G (at most " +
                        size_text(devices::kMaximumImageSize) + ")")
      ->required();
  create->add_flag("--force", create_command->force, wrap("replace an existing file"));

  CLI::App* info = disk->add_subcommand(
      "info",
      "show an image's size\n"
      "Opens PATH read-only and prints its size, in bytes and 512-byte sectors, and the serial "
      "number the guest sees.");
  info->allow_extras();
  auto info_command = std::make_shared<DiskInfoCommand>();
  info->add_option("PATH", info_command->path, wrap("the image file"))->required()->type_name("");

  list_as_actions(*disk);

  return {disk, [disk, create, create_command, info_command]() -> Result<Command> {
            auto action = parsed_action(*disk);
            if (!action) return action.error();
            if (auto extra = refuse_unexpected_arguments(**action); !extra) return extra.error();
            if (*action == create) return Command{*create_command};
            return Command{*info_command};
          }};
}

int execute(const DiskCreateCommand& command) {
  if (auto created = devices::create_raw_image(command.path, command.size_bytes, command.force);
      !created) {
    report_error(created.error().message);
    return exit_status::kUnavailable;
  }
  std::printf("created %s: %llu bytes (%llu sectors), sparse raw image\n", command.path.c_str(),
              static_cast<unsigned long long>(command.size_bytes),
              static_cast<unsigned long long>(command.size_bytes / devices::kSectorSize));
  return 0;
}

int execute(const DiskInfoCommand& command) {
  auto image = devices::RawImageFile::open(command.path, devices::DiskAccess::ReadOnly);
  if (!image) {
    report_error(image.error().message);
    return exit_status::kUnavailable;
  }
  std::printf("%s: %llu bytes (%llu sectors of 512 bytes), raw image, serial \"%s\"\n",
              command.path.c_str(), static_cast<unsigned long long>((*image)->size_bytes()),
              static_cast<unsigned long long>((*image)->sector_count()),
              (*image)->serial().c_str());
  return 0;
}

}  // namespace vmlab::cli
