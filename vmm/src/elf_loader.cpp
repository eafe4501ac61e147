#include "vmlab/elf_loader.hpp"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>

namespace vmlab {

namespace {

// Every refusal says "malformed guest ELF", whatever its kind.
Error malformed(ElfError kind, const std::string& why) {
  return Error{kind, "malformed guest ELF: " + why};
}

template <typename T>
T copy_header(std::span<const std::uint8_t> image, std::uint64_t offset) {
  T header{};
  std::memcpy(&header, image.data() + offset, sizeof header);  // may be unaligned in the file
  return header;
}

bool ranges_overlap(std::uint64_t a_base, std::uint64_t a_size, std::uint64_t b_base,
                    std::uint64_t b_size) {
  return a_base < b_base + b_size && b_base < a_base + a_size;
}

// `accepted` holds disjoint ranges by base; does [base, base + size) overlap
// one of them? Only the neighbours of `base` can.
bool overlaps_accepted(const std::map<std::uint64_t, std::uint64_t>& accepted, std::uint64_t base,
                       std::uint64_t size) {
  auto above = accepted.upper_bound(base);
  if (above != accepted.end() && ranges_overlap(base, size, above->first, above->second)) {
    return true;
  }
  if (above == accepted.begin()) return false;
  const auto& [below_base, below_size] = *std::prev(above);
  return ranges_overlap(base, size, below_base, below_size);
}

}  // namespace

Result<LoadedImage> inspect_elf(std::span<const std::uint8_t> image, std::uint64_t ram_size,
                                std::span<const ReservedRange> reserved) {
  if (image.size() < sizeof(Elf64_Ehdr)) {
    return malformed(ElfError::kTruncated, "file is " + std::to_string(image.size()) +
                                               " bytes, shorter than an ELF64 header (truncated?)");
  }
  auto header = copy_header<Elf64_Ehdr>(image, 0);
  if (std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0)
    return malformed(ElfError::kNotElf, "no ELF magic number");
  if (header.e_ident[EI_CLASS] != ELFCLASS64) {
    return malformed(ElfError::kUnsupported,
                     "not a 64-bit (ELFCLASS64) image; build the guest for x86-64");
  }
  if (header.e_ident[EI_DATA] != ELFDATA2LSB)
    return malformed(ElfError::kUnsupported, "not little-endian");
  if (header.e_ident[EI_VERSION] != EV_CURRENT)
    return malformed(ElfError::kUnsupported, "unknown ELF version");
  if (header.e_type != ET_EXEC)
    return malformed(ElfError::kUnsupported, "not an executable (ET_EXEC) image");
  if (header.e_machine != EM_X86_64) {
    return malformed(ElfError::kUnsupported,
                     "machine is " + std::to_string(header.e_machine) + ", not x86-64 (62)");
  }
  if (header.e_phnum == 0) return malformed(ElfError::kMalformed, "no program headers");
  // PN_XNUM means the real count is in section header 0's sh_info (ELF gABI,
  // "Program Header"); a guest kernel has a handful, so that is not read.
  if (header.e_phnum == PN_XNUM) {
    return malformed(ElfError::kUnsupported,
                     "e_phnum is PN_XNUM (0xffff): extended program header numbering is not "
                     "supported; link the guest with fewer program headers");
  }
  if (header.e_phentsize != sizeof(Elf64_Phdr))
    return malformed(ElfError::kMalformed, "unexpected program header size");
  const std::uint64_t table_size = std::uint64_t{header.e_phnum} * sizeof(Elf64_Phdr);
  if (header.e_phoff > image.size() || table_size > image.size() - header.e_phoff) {
    return malformed(ElfError::kTruncated,
                     "program header table runs past the end of the file (truncated?)");
  }

  LoadedImage loaded;
  loaded.entry = GuestPhysAddr(header.e_entry);
  bool entry_found = false;
  // The segments accepted so far, which never overlap one another, by base:
  // a new one can only overlap the last one starting at or below its base or
  // the first one starting above it, so checking it costs O(log n), not O(n).
  std::map<std::uint64_t, std::uint64_t> accepted;  // base -> memory size
  for (std::uint16_t index = 0; index < header.e_phnum; ++index) {
    auto segment = copy_header<Elf64_Phdr>(image, header.e_phoff + index * sizeof(Elf64_Phdr));
    if (segment.p_type != PT_LOAD || segment.p_memsz == 0) continue;
    const std::string which = "segment " + std::to_string(index);
    if (segment.p_filesz > segment.p_memsz)
      return malformed(ElfError::kMalformed, which + " has filesz > memsz");
    if (segment.p_offset > image.size() || segment.p_filesz > image.size() - segment.p_offset) {
      return malformed(ElfError::kTruncated,
                       which + " data runs past the end of the file (truncated?)");
    }
    // The guest is identity mapped: physical and virtual addresses must agree.
    if (segment.p_paddr != segment.p_vaddr) {
      return malformed(ElfError::kMalformed,
                       which + " has p_paddr != p_vaddr; link the guest identity-mapped");
    }
    const std::uint64_t base = segment.p_paddr;
    if (base > ram_size || segment.p_memsz > ram_size - base) {
      return malformed(ElfError::kOutsideRam,
                       which + " at " + describe_range(GuestPhysAddr(base), segment.p_memsz) +
                           " lies outside guest RAM (" + std::to_string(ram_size >> 20) +
                           " MiB); raise --mem or relink the guest");
    }
    for (const auto& range : reserved) {
      if (ranges_overlap(base, segment.p_memsz, range.base.value(), range.size)) {
        return malformed(ElfError::kOverlapsReserved,
                         which + " at " + describe_range(GuestPhysAddr(base), segment.p_memsz) +
                             " overlaps the reserved " + range.purpose + " at " +
                             describe_range(range.base, range.size));
      }
    }
    if (overlaps_accepted(accepted, base, segment.p_memsz)) {
      return malformed(ElfError::kMalformed, which + " overlaps another loadable segment");
    }
    accepted.emplace(base, segment.p_memsz);
    const bool executable = (segment.p_flags & PF_X) != 0;
    if (executable && header.e_entry >= base && header.e_entry - base < segment.p_memsz) {
      entry_found = true;
    }
    loaded.segments.push_back(LoadedSegment{GuestPhysAddr(base), segment.p_filesz, segment.p_memsz,
                                            executable, (segment.p_flags & PF_W) != 0});
  }
  if (loaded.segments.empty())
    return malformed(ElfError::kMalformed, "no loadable (PT_LOAD) segment");
  if (!entry_found) {
    char text[32];
    std::snprintf(text, sizeof text, "%#llx", static_cast<unsigned long long>(header.e_entry));
    return malformed(ElfError::kMalformed,
                     std::string("entry point ") + text + " is not inside an executable segment");
  }
  auto by_base = [](const LoadedSegment& a, const LoadedSegment& b) { return a.base < b.base; };
  std::sort(loaded.segments.begin(), loaded.segments.end(), by_base);
  loaded.lowest = loaded.segments.front().base;
  for (const auto& segment : loaded.segments) {
    loaded.highest = std::max(loaded.highest, segment.base + segment.memory_size);
  }
  return loaded;
}

Result<LoadedImage> load_elf(std::span<const std::uint8_t> image, GuestMemoryAccess& memory,
                             std::span<const ReservedRange> reserved) {
  auto inspected = inspect_elf(image, memory.size(), reserved);
  if (!inspected) return inspected;
  auto header = copy_header<Elf64_Ehdr>(image, 0);
  for (std::uint16_t index = 0; index < header.e_phnum; ++index) {
    auto segment = copy_header<Elf64_Phdr>(image, header.e_phoff + index * sizeof(Elf64_Phdr));
    if (segment.p_type != PT_LOAD || segment.p_memsz == 0) continue;
    const GuestPhysAddr base(segment.p_paddr);
    // inspect_elf has checked both ranges, so these cannot fail; still propagate.
    if (auto status = memory.write(base, image.subspan(segment.p_offset, segment.p_filesz));
        !status) {
      return status.error();
    }
    if (auto status = memory.fill(base + segment.p_filesz, 0, segment.p_memsz - segment.p_filesz);
        !status) {
      return status.error();
    }
  }
  return inspected;
}

Result<std::vector<std::uint8_t>> read_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return Error::from_errno(ElfError::kUnreadable, "cannot open " + path, errno);
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(file)),
                                  std::istreambuf_iterator<char>());
  if (file.bad()) return Error::from_errno(ElfError::kUnreadable, "cannot read " + path, errno);
  return bytes;
}

}  // namespace vmlab
