#include <vmlab/devices/raw_image_file.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace vmlab::devices {
namespace {

// What went wrong, or no kind at all when nothing did.
std::error_code error_kind(const Status& status) {
  return status ? std::error_code{} : status.error().kind;
}

// A fresh directory under /tmp for one test, removed with everything in it.
class TemporaryDirectory {
 public:
  TemporaryDirectory() {
    std::string pattern = "/tmp/vmlab-block-test-XXXXXX";
    if (::mkdtemp(pattern.data()) != nullptr) m_path = pattern;
  }
  TemporaryDirectory(const TemporaryDirectory&) = delete;
  TemporaryDirectory& operator=(const TemporaryDirectory&) = delete;
  ~TemporaryDirectory() {
    if (m_path.empty()) return;
    std::error_code ignored;
    // A test may have made files read-only; the owner can still remove them.
    std::filesystem::remove_all(m_path, ignored);
  }
  bool valid() const { return !m_path.empty(); }
  std::string file(const std::string& name) const { return m_path + "/" + name; }
  const std::string& path() const { return m_path; }

 private:
  std::string m_path;
};

std::vector<std::uint8_t> file_contents(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(file), {});
}

void write_file(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::uint8_t> pattern(std::size_t length, std::uint8_t seed) {
  std::vector<std::uint8_t> bytes(length);
  for (std::size_t index = 0; index < length; ++index) {
    bytes[index] = static_cast<std::uint8_t>(seed + index * 7);
  }
  return bytes;
}

class RawImageFileTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(m_directory.valid()) << "mkdtemp under /tmp failed"; }

  // A new zero-filled image of `sectors` sectors.
  std::string make_image(const std::string& name, std::uint64_t sectors) {
    const std::string path = m_directory.file(name);
    auto created = create_raw_image(path, sectors * kSectorSize, false);
    EXPECT_TRUE(created) << created.error().message;
    return path;
  }

  std::unique_ptr<RawImageFile> open_ok(const std::string& path, DiskAccess access) {
    auto image = RawImageFile::open(path, access);
    EXPECT_TRUE(image) << image.error().message;
    if (!image) return nullptr;
    return std::move(*image);
  }

  // A hand-made image `name` holding `contents`, opened.
  std::unique_ptr<RawImageFile> open_written(const std::string& name,
                                             const std::vector<std::uint8_t>& contents,
                                             DiskAccess access) {
    write_file(m_directory.file(name), contents);
    return open_ok(m_directory.file(name), access);
  }

  // Why opening `path` failed (nullopt if it did not).
  std::optional<std::error_code> open_error(const std::string& path, DiskAccess access) {
    auto image = RawImageFile::open(path, access);
    if (image) return std::nullopt;
    return image.error().kind;
  }

  TemporaryDirectory m_directory;
};

TEST_F(RawImageFileTest, ReportsSizeSectorsAccessAndSerial) {
  const std::string path = make_image("boot.img", 2048);
  auto image = open_ok(path, DiskAccess::ReadWrite);
  ASSERT_TRUE(image);
  EXPECT_EQ(image->size_bytes(), 2048 * kSectorSize);
  EXPECT_EQ(image->sector_count(), 2048u);
  EXPECT_FALSE(image->read_only());
  EXPECT_EQ(image->serial(), "boot.img");
  EXPECT_EQ(image->path(), path);

  auto read_only = open_ok(make_image("other.img", 1), DiskAccess::ReadOnly);
  ASSERT_TRUE(read_only);
  EXPECT_TRUE(read_only->read_only());
}

TEST_F(RawImageFileTest, AnyRawFileIsAnImage) {
  // Not made by create_raw_image: any file of whole sectors will do.
  auto image = open_written("handmade.raw", pattern(3 * kSectorSize, 1), DiskAccess::ReadOnly);
  ASSERT_TRUE(image);
  EXPECT_EQ(image->sector_count(), 3u);
  std::vector<std::uint8_t> sector(kSectorSize);
  ASSERT_TRUE(image->read(2 * kSectorSize, sector));
  const auto expected = pattern(3 * kSectorSize, 1);
  EXPECT_TRUE(std::equal(sector.begin(), sector.end(), expected.begin() + 2 * kSectorSize));
}

TEST_F(RawImageFileTest, WriteThenReadRoundTripsAtAnyOffset) {
  auto image = open_ok(make_image("disk.img", 64), DiskAccess::ReadWrite);
  ASSERT_TRUE(image);
  const auto sectors = pattern(4 * kSectorSize, 3);
  ASSERT_TRUE(image->write(10 * kSectorSize, sectors));
  std::vector<std::uint8_t> back(sectors.size());
  ASSERT_TRUE(image->read(10 * kSectorSize, back));
  EXPECT_EQ(back, sectors);

  // Byte addressed: an unaligned range works too.
  const auto bytes = pattern(100, 9);
  ASSERT_TRUE(image->write(12345, bytes));
  std::vector<std::uint8_t> small(bytes.size());
  ASSERT_TRUE(image->read(12345, small));
  EXPECT_EQ(small, bytes);

  // The last byte of the disk is reachable, and nothing past it.
  const std::array<std::uint8_t, 1> last{0x5a};
  ASSERT_TRUE(image->write(image->size_bytes() - 1, last));
  std::array<std::uint8_t, 1> last_back{};
  ASSERT_TRUE(image->read(image->size_bytes() - 1, last_back));
  EXPECT_EQ(last_back[0], 0x5a);
}

TEST_F(RawImageFileTest, NewImageReadsAsZeros) {
  auto image = open_ok(make_image("zero.img", 8), DiskAccess::ReadOnly);
  ASSERT_TRUE(image);
  std::vector<std::uint8_t> bytes(8 * kSectorSize, 0xee);
  ASSERT_TRUE(image->read(0, bytes));
  EXPECT_EQ(bytes, std::vector<std::uint8_t>(8 * kSectorSize, 0));
}

TEST_F(RawImageFileTest, WritesPersistAcrossCloseAndReopen) {
  const std::string path = make_image("persist.img", 16);
  const auto data = pattern(2 * kSectorSize, 42);
  {
    auto image = open_ok(path, DiskAccess::ReadWrite);
    ASSERT_TRUE(image);
    ASSERT_TRUE(image->write(5 * kSectorSize, data));
    // The destructor does the shutdown flush and closes.
  }
  auto reopened = open_ok(path, DiskAccess::ReadOnly);
  ASSERT_TRUE(reopened);
  std::vector<std::uint8_t> back(data.size());
  ASSERT_TRUE(reopened->read(5 * kSectorSize, back));
  EXPECT_EQ(back, data);

  const auto on_disk = file_contents(path);
  ASSERT_EQ(on_disk.size(), 16 * kSectorSize);
  EXPECT_TRUE(std::equal(data.begin(), data.end(), on_disk.begin() + 5 * kSectorSize));
}

TEST_F(RawImageFileTest, CloseFlushesAndLaterCallsFail) {
  auto image = open_ok(make_image("close.img", 4), DiskAccess::ReadWrite);
  ASSERT_TRUE(image);
  ASSERT_TRUE(image->write(0, pattern(kSectorSize, 1)));
  ASSERT_TRUE(image->close());
  EXPECT_EQ(image->flushes(), 1u);  // the shutdown flush
  EXPECT_TRUE(image->close());      // closing twice is harmless

  std::vector<std::uint8_t> sector(kSectorSize);
  auto read = image->read(0, sector);
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().kind, DiskError::kClosed);
  EXPECT_EQ(error_kind(image->write(0, sector)), DiskError::kClosed);
  EXPECT_EQ(error_kind(image->flush()), DiskError::kClosed);
}

TEST_F(RawImageFileTest, CountsBytesAndFlushes) {
  auto image = open_ok(make_image("count.img", 8), DiskAccess::ReadWrite);
  ASSERT_TRUE(image);
  std::vector<std::uint8_t> buffer(3 * kSectorSize);
  ASSERT_TRUE(image->write(0, buffer));
  ASSERT_TRUE(image->read(0, std::span(buffer).first(kSectorSize)));
  ASSERT_TRUE(image->flush());
  ASSERT_TRUE(image->flush());
  EXPECT_EQ(image->bytes_written(), 3 * kSectorSize);
  EXPECT_EQ(image->bytes_read(), kSectorSize);
  EXPECT_EQ(image->flushes(), 2u);
  // A refused transfer counts nothing.
  EXPECT_EQ(error_kind(image->read(image->size_bytes(), std::span(buffer).first(1))),
            DiskError::kOutOfRange);
  EXPECT_EQ(image->bytes_read(), kSectorSize);
}

TEST_F(RawImageFileTest, ReadOnlyImageRefusesWritesAndStaysUnchanged) {
  const auto original = pattern(4 * kSectorSize, 7);
  auto image = open_written("readonly.img", original, DiskAccess::ReadOnly);
  ASSERT_TRUE(image);
  auto written = image->write(0, pattern(kSectorSize, 99));
  ASSERT_FALSE(written);
  EXPECT_EQ(written.error().kind, DiskError::kReadOnly);
  EXPECT_TRUE(image->flush());  // nothing to flush, and not an error
  image.reset();
  EXPECT_EQ(file_contents(m_directory.file("readonly.img")), original);
}

TEST_F(RawImageFileTest, RangePastTheEndIsAnErrorAndTransfersNothing) {
  const auto original = pattern(4 * kSectorSize, 5);
  auto image = open_written("edge.img", original, DiskAccess::ReadWrite);
  ASSERT_TRUE(image);

  std::vector<std::uint8_t> buffer(kSectorSize, 0xaa);
  EXPECT_EQ(error_kind(image->read(image->size_bytes() - 256, buffer)), DiskError::kOutOfRange);
  EXPECT_EQ(buffer, std::vector<std::uint8_t>(kSectorSize, 0xaa));

  EXPECT_EQ(error_kind(image->write(image->size_bytes() - 256, buffer)), DiskError::kOutOfRange);
  EXPECT_EQ(error_kind(image->write(image->size_bytes(), std::span(buffer).first(1))),
            DiskError::kOutOfRange);
  // Offsets that would wrap around are past the end, not at the start.
  EXPECT_EQ(error_kind(image->read(std::numeric_limits<std::uint64_t>::max(), buffer)),
            DiskError::kOutOfRange);
  EXPECT_EQ(error_kind(image->write(std::numeric_limits<std::uint64_t>::max() - 10, buffer)),
            DiskError::kOutOfRange);

  // An empty transfer at the very end is in range.
  EXPECT_TRUE(image->read(image->size_bytes(), std::span<std::uint8_t>()));
  image.reset();
  EXPECT_EQ(file_contents(m_directory.file("edge.img")), original);
}

TEST_F(RawImageFileTest, MissingFileSaysHowToCreateOne) {
  const std::string path = m_directory.file("absent.img");
  auto image = RawImageFile::open(path, DiskAccess::ReadWrite);
  ASSERT_FALSE(image);
  EXPECT_EQ(image.error().kind, DiskError::kNotFound);
  // What to type: the path, in the command that creates it.
  EXPECT_NE(image.error().message.find("vmlab disk create " + path), std::string::npos);
}

TEST_F(RawImageFileTest, DirectoryIsRefused) {
  for (const DiskAccess access : {DiskAccess::ReadWrite, DiskAccess::ReadOnly}) {
    EXPECT_EQ(open_error(m_directory.path(), access), DiskError::kNotAnImage);
  }
}

TEST_F(RawImageFileTest, NonRegularFileIsRefused) {
  EXPECT_EQ(open_error("/dev/null", DiskAccess::ReadOnly), DiskError::kNotAnImage);
}

TEST_F(RawImageFileTest, EmptyFileIsRefused) {
  write_file(m_directory.file("empty.img"), {});
  EXPECT_EQ(open_error(m_directory.file("empty.img"), DiskAccess::ReadOnly),
            DiskError::kNotAnImage);
}

TEST_F(RawImageFileTest, PartialSectorIsRefusedWithTheSize) {
  const std::string path = m_directory.file("odd.img");
  write_file(path, pattern(1000, 0));
  auto image = RawImageFile::open(path, DiskAccess::ReadWrite);
  ASSERT_FALSE(image);
  EXPECT_EQ(image.error().kind, DiskError::kNotAnImage);
  // The size it has, and the command that pads it.
  EXPECT_NE(image.error().message.find("is 1000 bytes"), std::string::npos);
  EXPECT_NE(image.error().message.find("truncate -s %512 " + path), std::string::npos);
}

TEST_F(RawImageFileTest, ImageThatCannotBeWrittenSuggestsReadOnlyEvenForRoot) {
  // A running executable cannot be opened for writing (ETXTBSY), whoever
  // asks: this test's own binary.
  const std::string path = std::filesystem::read_symlink("/proc/self/exe");
  auto image = RawImageFile::open(path, DiskAccess::ReadWrite);
  ASSERT_FALSE(image);
  EXPECT_EQ(image.error().kind, DiskError::kCannotOpen);
  EXPECT_EQ(image.error().system_errno, ETXTBSY);
  EXPECT_NE(image.error().message.find("--disk-readonly"), std::string::npos);
}

TEST_F(RawImageFileTest, SecondWriterIsRefusedWhileTheFirstHoldsTheImage) {
  const std::string path = make_image("shared.img", 4);
  auto first = open_ok(path, DiskAccess::ReadWrite);
  ASSERT_TRUE(first);

  for (const DiskAccess access : {DiskAccess::ReadWrite, DiskAccess::ReadOnly}) {
    EXPECT_EQ(open_error(path, access), DiskError::kInUse);
  }

  first.reset();
  EXPECT_TRUE(open_ok(path, DiskAccess::ReadWrite));
}

TEST_F(RawImageFileTest, ReadersShareButExcludeAWriter) {
  const std::string path = make_image("readers.img", 4);
  auto reader = open_ok(path, DiskAccess::ReadOnly);
  auto other_reader = open_ok(path, DiskAccess::ReadOnly);
  ASSERT_TRUE(reader);
  ASSERT_TRUE(other_reader);
  EXPECT_EQ(open_error(path, DiskAccess::ReadWrite), DiskError::kInUse);
}

TEST(SerialFromPathTest, UsesThePrintableFileNameUpToTwentyBytes) {
  EXPECT_EQ(serial_from_path("/var/lib/images/disk0.img"), "disk0.img");
  EXPECT_EQ(serial_from_path("disk.raw"), "disk.raw");
  EXPECT_EQ(serial_from_path("/a/a-very-long-image-file-name.img"), "a-very-long-image-fi");
  EXPECT_EQ(serial_from_path("/a/my disk\x01.img"), "my_disk_.img");
  EXPECT_EQ(serial_from_path("/a/\xc3\xa9t\xc3\xa9.img"), "__t__.img");
  EXPECT_EQ(serial_from_path("/a/dir/"), "vmlab-disk");
  EXPECT_EQ(serial_from_path(""), "vmlab-disk");
}

class CreateRawImageTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(m_directory.valid()); }
  TemporaryDirectory m_directory;
};

TEST_F(CreateRawImageTest, MakesASparseZeroFilledImage) {
  const std::string path = m_directory.file("new.img");
  const std::uint64_t size = 64 * 1024 * 1024;
  ASSERT_TRUE(create_raw_image(path, size, false));
  struct stat status {};
  ASSERT_EQ(::stat(path.c_str(), &status), 0);
  EXPECT_EQ(static_cast<std::uint64_t>(status.st_size), size);
  // Sparse: the file system allocated (almost) nothing for 64 MiB of zeros.
  EXPECT_LT(static_cast<std::uint64_t>(status.st_blocks) * 512, size / 16);

  auto image = RawImageFile::open(path, DiskAccess::ReadOnly);
  ASSERT_TRUE(image);
  std::vector<std::uint8_t> sector(kSectorSize, 0xff);
  ASSERT_TRUE((*image)->read(size - kSectorSize, sector));
  EXPECT_EQ(sector, std::vector<std::uint8_t>(kSectorSize, 0));
}

TEST_F(CreateRawImageTest, RefusesSizesThatAreNotWholeSectorsOrTooLarge) {
  const std::string path = m_directory.file("bad.img");
  const std::pair<std::uint64_t, DiskError> refused[] = {
      {0, DiskError::kBadSize},
      {511, DiskError::kBadSize},
      {1000, DiskError::kBadSize},
      {kMaximumImageSize + kSectorSize, DiskError::kTooLarge},
      {kMaximumImageSize * 2, DiskError::kTooLarge}};
  for (const auto& [size, kind] : refused) {
    auto created = create_raw_image(path, size, false);
    ASSERT_FALSE(created) << size;
    EXPECT_EQ(created.error().kind, kind) << size;
    EXPECT_FALSE(std::filesystem::exists(path)) << size;
  }
}

TEST_F(CreateRawImageTest, RefusesToOverwriteWithoutForce) {
  const std::string path = m_directory.file("precious.img");
  const auto original = pattern(2 * kSectorSize, 11);
  write_file(path, original);
  auto created = create_raw_image(path, 4 * kSectorSize, false);
  ASSERT_FALSE(created);
  EXPECT_EQ(created.error().kind, DiskError::kAlreadyExists);
  EXPECT_NE(created.error().message.find("--force"), std::string::npos);  // the way out
  EXPECT_EQ(file_contents(path), original);
}

TEST_F(CreateRawImageTest, OverwriteReplacesTheImageWithZeros) {
  const std::string path = m_directory.file("replace.img");
  write_file(path, pattern(8 * kSectorSize, 11));
  ASSERT_TRUE(create_raw_image(path, 2 * kSectorSize, true));
  EXPECT_EQ(file_contents(path), std::vector<std::uint8_t>(2 * kSectorSize, 0));
  // Growing keeps it zero-filled as well.
  ASSERT_TRUE(create_raw_image(path, 16 * kSectorSize, true));
  EXPECT_EQ(file_contents(path), std::vector<std::uint8_t>(16 * kSectorSize, 0));
}

TEST_F(CreateRawImageTest, OverwriteIsRefusedWhileAVmUsesTheImage) {
  const std::string path = m_directory.file("busy.img");
  ASSERT_TRUE(create_raw_image(path, 4 * kSectorSize, false));
  auto image = RawImageFile::open(path, DiskAccess::ReadWrite);
  ASSERT_TRUE(image);
  ASSERT_TRUE((*image)->write(0, pattern(kSectorSize, 1)));
  auto created = create_raw_image(path, 8 * kSectorSize, true);
  ASSERT_FALSE(created);
  EXPECT_EQ(created.error().kind, DiskError::kInUse);
  EXPECT_EQ(std::filesystem::file_size(path), 4 * kSectorSize);
}

TEST_F(CreateRawImageTest, ReportsPathsThatCannotBeCreated) {
  auto in_missing_directory =
      create_raw_image(m_directory.file("no/such/dir.img"), kSectorSize, false);
  ASSERT_FALSE(in_missing_directory);
  EXPECT_EQ(in_missing_directory.error().kind, DiskError::kCreateFailed);
  EXPECT_EQ(in_missing_directory.error().system_errno, ENOENT);

  auto directory = create_raw_image(m_directory.path(), kSectorSize, true);
  ASSERT_FALSE(directory);
  EXPECT_EQ(directory.error().kind, DiskError::kNotAnImage);
}

}  // namespace
}  // namespace vmlab::devices
