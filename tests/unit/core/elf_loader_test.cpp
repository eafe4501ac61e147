#include "vmlab/elf_loader.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "../../support/elf_builder.hpp"
#include "vmlab/boot.hpp"

namespace vmlab {
namespace {

using testing::build_elf;
using testing::header_of;
using testing::program_header_of;

constexpr std::uint64_t kKernelBase = 0x100000;

std::vector<std::uint8_t> valid_image() {
  return build_elf({{kKernelBase, {0x90, 0x90, 0xf4}, 0x3000, PF_R | PF_X},
                    {kKernelBase + 0x4000, {1, 2, 3, 4}, 0x2000, PF_R | PF_W}},
                   kKernelBase + 1);
}

class ElfLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto created = GuestMemory::create(8 * MiB);
    ASSERT_TRUE(created.ok()) << created.error().message;
    memory.emplace(std::move(*created));
  }
  Result<LoadedImage> load(const std::vector<std::uint8_t>& image) {
    return load_elf(image, *memory, boot_reserved_ranges());
  }
  // Refused as `kind`, with a message that names `what` is wrong.
  void expect_rejected(const std::vector<std::uint8_t>& image, ElfError kind,
                       const std::string& what) {
    // Poison guest memory so we can see that a rejected image wrote nothing.
    ASSERT_TRUE(memory->fill(GuestPhysAddr(kKernelBase), 0xcc, 0x8000).ok());
    auto result = load(image);
    ASSERT_FALSE(result.ok()) << "accepted an image that should fail with: " << what;
    EXPECT_EQ(result.error().kind, kind) << result.error().message;
    EXPECT_NE(result.error().message.find(what), std::string::npos) << result.error().message;
    auto byte = memory->read_object<std::uint8_t>(GuestPhysAddr(kKernelBase));
    ASSERT_TRUE(byte.ok());
    EXPECT_EQ(*byte, 0xcc) << "a rejected image touched guest memory";
  }
  std::optional<GuestMemory> memory;
};

TEST_F(ElfLoaderTest, LoadsSegmentsAndZeroesBss) {
  ASSERT_TRUE(memory->fill(GuestPhysAddr(kKernelBase), 0xcc, 0x8000).ok());
  auto result = load(valid_image());
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->entry, GuestPhysAddr(kKernelBase + 1));
  ASSERT_EQ(result->segments.size(), 2u);
  EXPECT_EQ(result->lowest, GuestPhysAddr(kKernelBase));
  EXPECT_EQ(result->highest, GuestPhysAddr(kKernelBase + 0x6000));
  EXPECT_TRUE(result->segments[0].executable);
  EXPECT_TRUE(result->segments[1].writable);
  EXPECT_EQ(*memory->read_object<std::uint8_t>(GuestPhysAddr(kKernelBase + 2)), 0xf4);
  EXPECT_EQ(*memory->read_object<std::uint8_t>(GuestPhysAddr(kKernelBase + 3)), 0);  // BSS
  EXPECT_EQ(*memory->read_object<std::uint32_t>(GuestPhysAddr(kKernelBase + 0x4000)), 0x04030201u);
  EXPECT_EQ(*memory->read_object<std::uint8_t>(GuestPhysAddr(kKernelBase + 0x5fff)), 0);
}

TEST_F(ElfLoaderTest, RejectsTruncatedHeader) {
  auto image = valid_image();
  image.resize(40);
  expect_rejected(image, ElfError::kTruncated, "truncated");
}

TEST_F(ElfLoaderTest, RejectsTruncatedSegmentData) {
  auto image = valid_image();
  image.resize(image.size() - 2);
  expect_rejected(image, ElfError::kTruncated, "past the end of the file");
}

TEST_F(ElfLoaderTest, RejectsTruncatedProgramHeaders) {
  auto image = valid_image();
  header_of(image).e_phoff = image.size() - 10;
  expect_rejected(image, ElfError::kTruncated, "program header table");
}

TEST_F(ElfLoaderTest, RejectsBadMagic) {
  auto image = valid_image();
  image[1] = 'X';
  expect_rejected(image, ElfError::kNotElf, "magic");
}

TEST_F(ElfLoaderTest, RejectsWrongClass) {
  auto image = valid_image();
  header_of(image).e_ident[EI_CLASS] = ELFCLASS32;
  expect_rejected(image, ElfError::kUnsupported, "64-bit");
}

TEST_F(ElfLoaderTest, RejectsWrongMachine) {
  auto image = valid_image();
  header_of(image).e_machine = EM_AARCH64;
  expect_rejected(image, ElfError::kUnsupported, "not x86-64");
}

TEST_F(ElfLoaderTest, RejectsSharedObject) {
  auto image = valid_image();
  header_of(image).e_type = ET_DYN;
  expect_rejected(image, ElfError::kUnsupported, "ET_EXEC");
}

TEST_F(ElfLoaderTest, RejectsSegmentOutsideRam) {
  auto image = build_elf({{7 * MiB, {0xf4}, 2 * MiB}}, 7 * MiB);
  expect_rejected(image, ElfError::kOutsideRam, "outside guest RAM");
}

TEST_F(ElfLoaderTest, RejectsSegmentWhoseEndWrapsAround) {
  auto image = valid_image();
  program_header_of(image, 0).p_memsz = ~0ULL - 0x10;
  expect_rejected(image, ElfError::kOutsideRam, "outside guest RAM");
}

TEST_F(ElfLoaderTest, RejectsSegmentOverReservedRegion) {
  auto image = build_elf({{0x8000, {0xf4}, 0x1000}}, 0x8000);
  expect_rejected(image, ElfError::kOverlapsReserved, "reserved boot area");
}

TEST_F(ElfLoaderTest, RejectsSegmentOverCallerReservedRegion) {
  const std::vector<ReservedRange> extra{
      {GuestPhysAddr(kKernelBase + 0x5000), 0x1000, "monitor region"}};
  auto result = load_elf(valid_image(), *memory, boot_reserved_ranges(extra));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().kind, ElfError::kOverlapsReserved);
  EXPECT_NE(result.error().message.find("monitor region"), std::string::npos)
      << "names the caller's purpose for the range";
}

TEST_F(ElfLoaderTest, RejectsEntryOutsideSegments) {
  auto image = valid_image();
  header_of(image).e_entry = kKernelBase + 0x3800;  // between the two segments
  expect_rejected(image, ElfError::kMalformed, "entry point");
}

TEST_F(ElfLoaderTest, RejectsEntryInNonExecutableSegment) {
  auto image = valid_image();
  header_of(image).e_entry = kKernelBase + 0x4000;  // data segment
  expect_rejected(image, ElfError::kMalformed, "entry point");
}

TEST_F(ElfLoaderTest, RejectsFileSizeLargerThanMemorySize) {
  auto image = valid_image();
  program_header_of(image, 1).p_memsz = 2;
  expect_rejected(image, ElfError::kMalformed, "filesz > memsz");
}

TEST_F(ElfLoaderTest, RejectsOverlappingSegments) {
  auto image = build_elf({{kKernelBase, {0xf4}, 0x2000}, {kKernelBase + 0x1000, {0}, 0x1000, PF_R}},
                         kKernelBase);
  expect_rejected(image, ElfError::kMalformed, "overlaps another");
}

// The overlap check names the first segment, in program header order, that
// overlaps one listed before it, whichever side the overlap is on.
TEST_F(ElfLoaderTest, NamesTheFirstSegmentThatOverlapsAnEarlierOne) {
  const std::vector<testing::SegmentSpec> listed_downwards{
      {kKernelBase + 0x6000, {0xf4}, 0x1000},
      {kKernelBase + 0x4000, {}, 0x1000, PF_R},
      {kKernelBase, {}, 0x2000, PF_R},
  };
  auto with = [&](testing::SegmentSpec extra) {
    auto segments = listed_downwards;
    segments.push_back(std::move(extra));
    segments.push_back({kKernelBase + 0x6800, {}, 0x100, PF_R});  // overlaps segment 0 too
    return build_elf(segments, kKernelBase + 0x6000);
  };
  // Starts inside the segment below it.
  expect_rejected(with({kKernelBase + 0x1800, {}, 0x100, PF_R}), ElfError::kMalformed,
                  "segment 3 overlaps another loadable segment");
  // Starts below the next segment and runs into it.
  expect_rejected(with({kKernelBase + 0x3800, {}, 0x1000, PF_R}), ElfError::kMalformed,
                  "segment 3 overlaps another loadable segment");
  // Covers a whole segment, starting and ending outside it.
  expect_rejected(with({kKernelBase + 0x3000, {}, 0x3000, PF_R}), ElfError::kMalformed,
                  "segment 3 overlaps another loadable segment");
  // Fits exactly between two segments: only segment 4 overlaps.
  expect_rejected(with({kKernelBase + 0x2000, {}, 0x2000, PF_R}), ElfError::kMalformed,
                  "segment 4 overlaps another loadable segment");
}

// The loader against a plain pairwise check on random layouts: the same
// verdict, and the same segment named.
TEST_F(ElfLoaderTest, OverlapCheckAgreesWithPairwiseComparison) {
  std::uint64_t state = 0x2545f4914f6cdd1dULL;
  auto next = [&state] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  int rejected = 0;
  for (int round = 0; round < 500; ++round) {
    std::vector<testing::SegmentSpec> segments;
    const std::uint64_t count = 2 + next() % 12;
    for (std::uint64_t index = 0; index < count; ++index) {
      segments.push_back({kKernelBase + (next() % 64) * 0x400, {}, 0x100 + next() % 0x1000, PF_R});
    }
    segments[0].flags = PF_R | PF_X;
    std::optional<std::size_t> first_overlap;
    for (std::size_t later = 1; later < segments.size() && !first_overlap; ++later) {
      for (std::size_t earlier = 0; earlier < later; ++earlier) {
        const auto& a = segments[earlier];
        const auto& b = segments[later];
        if (a.address < b.address + b.memory_size && b.address < a.address + a.memory_size) {
          first_overlap = later;
          break;
        }
      }
    }
    auto result = load(build_elf(segments, segments[0].address));
    if (!first_overlap) {
      EXPECT_TRUE(result.ok()) << "round " << round << ": " << result.error().message;
      continue;
    }
    ++rejected;
    ASSERT_FALSE(result.ok()) << "round " << round;
    EXPECT_EQ(result.error().kind, ElfError::kMalformed) << result.error().message;
    EXPECT_NE(result.error().message.find("segment " + std::to_string(*first_overlap) +
                                          " overlaps another loadable segment"),
              std::string::npos)
        << "round " << round << ": " << result.error().message;
  }
  EXPECT_GT(rejected, 0) << "the layouts should include overlapping ones";
  EXPECT_LT(rejected, 500) << "the layouts should include disjoint ones";
}

// The most program headers e_phnum can count: 65534 (0xffff is PN_XNUM).
// Checking them must stay fast, so this image is one a user can wait for; the
// overlap check once compared every pair (seconds for this many).
constexpr std::size_t kMostProgramHeaders = 65534;

std::vector<testing::SegmentSpec> many_small_segments(std::size_t count) {
  std::vector<testing::SegmentSpec> segments;
  segments.reserve(count);
  for (std::size_t index = 0; index < count; ++index) {
    // 64 bytes each, all BSS but the first byte of every 1024th.
    std::vector<std::uint8_t> bytes;
    if (index % 1024 == 0) bytes.push_back(static_cast<std::uint8_t>(index / 1024 + 1));
    segments.push_back({kKernelBase + index * 64, std::move(bytes), 64, PF_R | PF_X});
  }
  return segments;
}

TEST_F(ElfLoaderTest, LoadsTheMostProgramHeadersAnImageCanCount) {
  auto segments = many_small_segments(kMostProgramHeaders);
  // Listed from the highest address down, so each one lands below the others.
  std::reverse(segments.begin(), segments.end());
  ASSERT_TRUE(memory->fill(GuestPhysAddr(kKernelBase), 0xcc, kMostProgramHeaders * 64).ok());
  auto result = load(build_elf(segments, kKernelBase));
  ASSERT_TRUE(result.ok()) << result.error().message;
  ASSERT_EQ(result->segments.size(), kMostProgramHeaders);
  EXPECT_EQ(result->lowest, GuestPhysAddr(kKernelBase));
  EXPECT_EQ(result->highest, GuestPhysAddr(kKernelBase + kMostProgramHeaders * 64));
  EXPECT_EQ(*memory->read_object<std::uint8_t>(GuestPhysAddr(kKernelBase)), 1);
  EXPECT_EQ(*memory->read_object<std::uint8_t>(GuestPhysAddr(kKernelBase + 1024 * 64)), 2);
  EXPECT_EQ(*memory->read_object<std::uint8_t>(GuestPhysAddr(kKernelBase + 1)), 0);  // BSS
  EXPECT_EQ(
      *memory->read_object<std::uint8_t>(GuestPhysAddr(kKernelBase + kMostProgramHeaders * 64 - 1)),
      0);
}

TEST_F(ElfLoaderTest, RejectsAnOverlapAmongTheMostProgramHeaders) {
  auto segments = many_small_segments(kMostProgramHeaders);
  segments.back().address = kKernelBase + 32 * 64 + 8;  // inside segment 32
  expect_rejected(
      build_elf(segments, kKernelBase), ElfError::kMalformed,
      "segment " + std::to_string(kMostProgramHeaders - 1) + " overlaps another loadable segment");
}

TEST_F(ElfLoaderTest, RejectsExtendedProgramHeaderNumbering) {
  // 65535 headers: e_phnum holds PN_XNUM, which means "see section header
  // 0", not a count.
  auto image = build_elf(many_small_segments(PN_XNUM), kKernelBase);
  ASSERT_EQ(header_of(image).e_phnum, PN_XNUM);
  expect_rejected(image, ElfError::kUnsupported, "PN_XNUM");
}

TEST_F(ElfLoaderTest, RejectsImageWithoutLoadableSegments) {
  auto image = valid_image();
  program_header_of(image, 0).p_type = PT_NOTE;
  program_header_of(image, 1).p_type = PT_NOTE;
  expect_rejected(image, ElfError::kMalformed, "no loadable");
}

TEST_F(ElfLoaderTest, RejectsVirtualAddressDifferentFromPhysical) {
  auto image = valid_image();
  program_header_of(image, 0).p_vaddr = 0xffffffff80100000ULL;
  expect_rejected(image, ElfError::kMalformed, "p_paddr != p_vaddr");
}

TEST_F(ElfLoaderTest, RandomCorruptionNeverCrashes) {
  const auto original = valid_image();
  std::uint64_t state = 0x9e3779b97f4a7c15ULL;
  for (int round = 0; round < 2000; ++round) {
    auto image = original;
    for (int flips = 0; flips < 4; ++flips) {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      image[state % image.size()] = static_cast<std::uint8_t>(state >> 32);
    }
    auto result = load(image);  // must return, accepted or not
    if (result.ok()) {
      EXPECT_TRUE(memory->contains(result->lowest, result->highest - result->lowest));
    }
  }
}

}  // namespace
}  // namespace vmlab
