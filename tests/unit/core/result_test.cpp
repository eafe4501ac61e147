// Error kinds (vmm/include/vmlab/result.hpp): a kind carries its module and
// its own name, and two modules' kinds never compare equal.
#include "vmlab/result.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <system_error>

#include "vmlab/bus.hpp"
#include "vmlab/elf_loader.hpp"

namespace vmlab {
namespace {

TEST(ErrorKind, IsNamedAfterItsEnumerator) {
  EXPECT_EQ(kind_name(ElfError::kUnreadable), "kUnreadable");
  EXPECT_EQ(kind_name(ElfError::kMalformed), "kMalformed");
  EXPECT_EQ(kind_name(ElfError::kOverlapsReserved), "kOverlapsReserved");
  EXPECT_EQ(kind_name(BusError::kOverlap), "kOverlap");
}

TEST(ErrorKind, AValueWithoutAnEnumeratorHasNoName) {
  EXPECT_EQ(kind_name(static_cast<ElfError>(0)), "");
  EXPECT_EQ(kind_name(static_cast<ElfError>(40)), "");
  EXPECT_EQ(kind_name(static_cast<ElfError>(1000)), "");
  const std::error_code unknown = static_cast<ElfError>(40);
  EXPECT_EQ(unknown.message(), "kind 40");
}

TEST(ErrorKind, ConvertsToAnErrorCodeOfItsModule) {
  const std::error_code code = ElfError::kMalformed;
  EXPECT_STREQ(code.category().name(), "elf");
  EXPECT_EQ(code.message(), "kMalformed");
  EXPECT_EQ(code, ElfError::kMalformed);
  EXPECT_NE(code, ElfError::kTruncated);
  EXPECT_TRUE(static_cast<bool>(code));
}

TEST(ErrorKind, KindsOfTwoModulesDifferEvenWithTheSameValue) {
  ASSERT_EQ(static_cast<int>(ElfError::kUnreadable), static_cast<int>(BusError::kEmptyRange));
  const std::error_code elf = ElfError::kUnreadable;
  EXPECT_NE(elf, BusError::kEmptyRange);
}

TEST(ErrorKind, AFailedSystemCallKeepsItsKindAndErrno) {
  const Error error = Error::from_errno(ElfError::kUnreadable, "cannot open guest.elf", ENOENT);
  EXPECT_EQ(error.kind, ElfError::kUnreadable);
  EXPECT_EQ(error.system_errno, ENOENT);
  EXPECT_NE(error.message.find("cannot open guest.elf: "), std::string::npos);
}

TEST(ErrorKind, AStatusHoldsTheError) {
  const Status ok;
  EXPECT_TRUE(ok.ok());
  const Status failed = Error{BusError::kOverlap, "overlap"};
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().kind, BusError::kOverlap);
}

}  // namespace
}  // namespace vmlab
