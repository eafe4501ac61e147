// Builds small ELF64 images in memory for loader tests.
#pragma once

#include <elf.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace vmlab::testing {

struct SegmentSpec {
  std::uint64_t address;
  std::vector<std::uint8_t> bytes;
  std::uint64_t memory_size;  // >= bytes.size(); the rest is BSS
  std::uint32_t flags = PF_R | PF_X;
};

inline std::vector<std::uint8_t> build_elf(const std::vector<SegmentSpec>& segments,
                                           std::uint64_t entry) {
  const std::uint64_t header_bytes = sizeof(Elf64_Ehdr) + segments.size() * sizeof(Elf64_Phdr);
  std::vector<std::uint8_t> image(header_bytes);
  Elf64_Ehdr header{};
  std::memcpy(header.e_ident, ELFMAG, SELFMAG);
  header.e_ident[EI_CLASS] = ELFCLASS64;
  header.e_ident[EI_DATA] = ELFDATA2LSB;
  header.e_ident[EI_VERSION] = EV_CURRENT;
  header.e_type = ET_EXEC;
  header.e_machine = EM_X86_64;
  header.e_version = EV_CURRENT;
  header.e_entry = entry;
  header.e_phoff = sizeof(Elf64_Ehdr);
  header.e_ehsize = sizeof(Elf64_Ehdr);
  header.e_phentsize = sizeof(Elf64_Phdr);
  header.e_phnum = static_cast<std::uint16_t>(segments.size());
  std::memcpy(image.data(), &header, sizeof header);
  for (std::size_t index = 0; index < segments.size(); ++index) {
    const auto& spec = segments[index];
    Elf64_Phdr program{};
    program.p_type = PT_LOAD;
    program.p_flags = spec.flags;
    program.p_offset = image.size();
    program.p_vaddr = spec.address;
    program.p_paddr = spec.address;
    program.p_filesz = spec.bytes.size();
    program.p_memsz = spec.memory_size;
    program.p_align = 0x1000;
    std::memcpy(image.data() + sizeof(Elf64_Ehdr) + index * sizeof(Elf64_Phdr), &program,
                sizeof program);
    image.insert(image.end(), spec.bytes.begin(), spec.bytes.end());
  }
  return image;
}

// Writes a one-segment guest at `address` (entry there too) to a temporary
// file for `vmlab run --guest`, and returns its path.
inline std::filesystem::path write_guest_file(const std::string& name,
                                              const std::vector<std::uint8_t>& code,
                                              std::uint64_t memory_size,
                                              std::uint64_t address = 0x100000) {
  const auto path = std::filesystem::temp_directory_path() / name;
  const auto image = build_elf({{address, code, memory_size}}, address);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(image.data()),
             static_cast<std::streamsize>(image.size()));
  return path;
}

inline Elf64_Ehdr& header_of(std::vector<std::uint8_t>& image) {
  return *reinterpret_cast<Elf64_Ehdr*>(image.data());  // the builder aligns nothing, x86 is fine
}
inline Elf64_Phdr& program_header_of(std::vector<std::uint8_t>& image, std::size_t index) {
  return *reinterpret_cast<Elf64_Phdr*>(image.data() + sizeof(Elf64_Ehdr) +
                                        index * sizeof(Elf64_Phdr));
}

}  // namespace vmlab::testing
