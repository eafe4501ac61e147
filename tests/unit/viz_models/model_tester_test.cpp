// The checker the model tests rely on fails a test for a model Qt's tester
// finds wrong, so a passing model test means something.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <QAbstractTableModel>

#include "qt_test_support.hpp"

namespace vmlab::viz {
namespace {

// A table whose cells claim children: a table's cells have none.
class BrokenTable final : public QAbstractTableModel {
 public:
  int rowCount(const QModelIndex&) const override { return 2; }
  int columnCount(const QModelIndex&) const override { return 2; }
  QVariant data(const QModelIndex&, int) const override { return {}; }
};

TEST(CheckedModel, FailsForAModelQtFindsWrong) {
  BrokenTable broken;
  EXPECT_NONFATAL_FAILURE({ testing::CheckedModel checked(&broken); }, "QAbstractItemModelTester");
}

}  // namespace
}  // namespace vmlab::viz
