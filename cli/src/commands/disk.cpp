// `vmlab disk create|info`: raw disk images for `vmlab run --disk`.
#include <cstdio>
#include <memory>

#include "cli11_options.hpp"
#include "commands.hpp"
#include "vmlab/devices/raw_image_file.hpp"

namespace vmlab::cli {

Subcommand add_disk_command(CLI::App& vmlab) {
  CLI::App* disk = add_command(vmlab, "disk", "create a raw disk image, or show one's size");

  CLI::App* create = add_command(
      *disk, "create",
      "make PATH a sparse raw disk image of SIZE bytes\n"
      "The image reads as zeros and takes no host space until written. An existing file is "
      "replaced only with --force, and never while a VM is using it.");
  auto create_command = std::make_shared<DiskCreateCommand>();
  add_operand(*create, "PATH", create_command->path, "the image file");
  add_parsed_option(*create, "SIZE", create_command->size_bytes, parse_disk_size, "",
                    "a whole number of 512-byte sectors, in bytes or binary units, the same "
                    "sizes as `vmlab run --mem`: 512, 64K, 64M, 64MiB, 2G (at most " +
                        size_text(devices::kMaximumImageSize) + ")")
      ->required();
  create->add_flag("--force", create_command->force, wrap("replace an existing file"));

  CLI::App* info = add_command(
      *disk, "info",
      "show an image's size\n"
      "Opens PATH read-only and prints its size, in bytes and 512-byte sectors, and the serial "
      "number the guest sees.");
  auto info_command = std::make_shared<DiskInfoCommand>();
  add_operand(*info, "PATH", info_command->path, "the image file");

  return command_of_actions(disk,
                            {parsed_into(create, create_command), parsed_into(info, info_command)});
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
