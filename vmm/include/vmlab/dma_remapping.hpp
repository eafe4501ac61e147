// What a CPU mode may ask of the board's DMA remapping hardware (the IOMMU
// model of a passthrough device), without knowing the device. The para mode
// uses it as Xen does for a paravirtual guest that owns a device: a frame it
// has validated as a page table must not be writable by DMA either, or the
// device could rewrite a table behind the validator's back.
#pragma once

#include "vmlab/address.hpp"

namespace vmlab {

class DmaRemapping {
 public:
  virtual ~DmaRemapping() = default;
  // While `frame` (a 4 KiB guest-physical page) is protected, every DMA that
  // would write it is blocked and recorded as a fault. Returns once no DMA
  // that could still write the frame is in flight, so the caller may read
  // the frame's contents afterwards and trust them.
  virtual void protect_from_device_writes(GuestPhysAddr frame, bool protect) = 0;
};

}  // namespace vmlab
