#include "vmlab/viz/app/output_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <QFile>
#include <atomic>
#include <cerrno>
#include <filesystem>
#include <fstream>

#include "vmlab/format.hpp"

namespace vmlab::viz {

namespace {

// Qt writes an image's text chunks before its pixels, and an SVG's
// description right after its opening element: both are near the start.
constexpr std::size_t kInspectedBytes = 64 * 1024;

constexpr std::string_view kPngSignature = "\x89PNG\r\n\x1a\n";

Error refusal(VizError kind, const std::string& path, const std::string& why, int error = 0) {
  std::string message = "--output " + single_quoted(path) + " " + why;
  if (error != 0) return Error::from_errno(kind, message, error);
  return Error{kind, message};
}

std::atomic<unsigned> g_temporaries{0};

}  // namespace

bool written_by_vmlab_viz(std::string_view head) {
  if (head.substr(0, kPngSignature.size()) == kPngSignature) {
    // A tEXt chunk: keyword, NUL, text (PNG 1.2, section 4.2.3.1).
    std::string chunk = "tEXtSoftware";
    chunk += '\0';
    chunk += kSoftwareName;
    return head.find(chunk) != std::string_view::npos;
  }
  const std::size_t start = head.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos) return false;
  const std::string_view text = head.substr(start);
  if (text.substr(0, 5) != "<?xml" && text.substr(0, 4) != "<svg") return false;
  const std::size_t svg = text.find("<svg");
  const std::size_t description = text.find("<desc>");
  if (svg == std::string_view::npos || description == std::string_view::npos) return false;
  const std::size_t end = text.find("</desc>", description);
  const std::string_view inside = text.substr(description, end - description);
  return inside.find(kSoftwareName) != std::string_view::npos;
}

Status check_output(const std::string& path) {
  if (path.empty()) return Error{VizError::kUsage, "--output needs a file name"};
  struct stat status {};
  if (::stat(path.c_str(), &status) != 0) {
    const int error = errno;
    if (error != ENOENT)
      return refusal(VizError::kOutputUnwritable, path, "cannot be checked", error);
    // A new file: its directory must be there.
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    std::error_code failure;
    if (!parent.empty() && !std::filesystem::is_directory(parent, failure)) {
      return refusal(
          VizError::kOutputUnwritable, path,
          "cannot be made: its directory " + single_quoted(parent.string()) + " does not exist");
    }
    return {};
  }
  if (!S_ISREG(status.st_mode)) {
    return refusal(VizError::kOutputNotAFile, path,
                   "is not a regular file (a directory? a device?); give an image's name");
  }
  if (status.st_size == 0) return {};
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return refusal(VizError::kOutputUnwritable, path, "cannot be read to check it", errno);
  }
  std::string head(kInspectedBytes, '\0');
  file.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<std::size_t>(file.gcount()));
  if (!written_by_vmlab_viz(head)) {
    return refusal(VizError::kOutputProtected, path,
                   "holds something vmlab-viz did not write; it will not replace it: remove it "
                   "first, or choose another name");
  }
  return {};
}

Status write_output(const std::string& path, const std::function<bool(const QString&)>& write) {
  if (auto checked = check_output(path); !checked) return checked;
  // A symbolic link is followed: its target is what gets replaced.
  std::error_code error;
  std::filesystem::path target = std::filesystem::path(path);
  if (std::filesystem::is_symlink(target, error)) {
    target = std::filesystem::weakly_canonical(target, error);
  }
  const std::filesystem::path directory =
      target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
  // The temporary keeps the target's extension: Qt picks the format by it.
  std::string temporary;
  int descriptor = -1;
  for (int attempt = 0; attempt < 100 && descriptor < 0; ++attempt) {
    temporary = (directory /
                 ("." + target.stem().string() + ".vmlab-viz-" + std::to_string(::getpid()) + "-" +
                  std::to_string(g_temporaries.fetch_add(1)) + target.extension().string()))
                    .string();
    descriptor = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (descriptor < 0 && errno != EEXIST) break;
  }
  if (descriptor < 0) {
    const int failure = errno;
    if (failure == ENOENT || failure == ENOTDIR) {
      return refusal(
          VizError::kOutputUnwritable, path,
          "cannot be made: its directory " + single_quoted(directory.string()) + " does not exist");
    }
    return refusal(VizError::kOutputUnwritable, path,
                   "cannot be made in " + single_quoted(directory.string()), failure);
  }
  ::close(descriptor);
  auto discard = [&] { ::unlink(temporary.c_str()); };
  if (!write(QFile::decodeName(temporary.c_str()))) {
    discard();
    return refusal(VizError::kRenderFailed, path,
                   "could not be written (is the disk full?); it was left as it was");
  }
  // Something may have appeared there while the image was made.
  if (auto checked = check_output(path); !checked) {
    discard();
    return checked;
  }
  if (::rename(temporary.c_str(), target.c_str()) != 0) {
    const int failure = errno;
    discard();
    return refusal(VizError::kOutputUnwritable, path, "cannot be replaced", failure);
  }
  return {};
}

}  // namespace vmlab::viz
