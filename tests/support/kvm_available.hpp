// Tests that need /dev/kvm skip, with the reason, where it cannot be used.
#pragma once

#include <gtest/gtest.h>

#include "vmlab/kvm.hpp"

#define VMLAB_REQUIRE_KVM()                                                  \
  do {                                                                       \
    auto vmlab_kvm_probe = ::vmlab::Kvm::open();                             \
    if (!vmlab_kvm_probe.ok()) {                                             \
      GTEST_SKIP() << "needs /dev/kvm: " << vmlab_kvm_probe.error().message; \
    }                                                                        \
  } while (false)
