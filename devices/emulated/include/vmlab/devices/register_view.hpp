// One face of a device model that answers on more than one port range: the
// ATA disk's command and control blocks, the master and slave 8259A. Each
// range gets its own IoDevice, which hands every access to the model with
// the face it came through.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include <vmlab/io_device.hpp>

namespace vmlab::devices {

// `Model` provides view_name(Face), read_view(Face, offset, data) and
// write_view(Face, offset, data), and outlives the view.
template <typename Model, typename Face>
class RegisterView final : public IoDevice {
 public:
  RegisterView(Model& model, Face face) : m_model(model), m_face(face) {}
  std::string_view name() const override { return m_model.view_name(m_face); }
  void read(std::uint64_t offset, std::span<std::uint8_t> data) override {
    m_model.read_view(m_face, offset, data);
  }
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) override {
    m_model.write_view(m_face, offset, data);
  }

 private:
  Model& m_model;
  Face m_face;
};

}  // namespace vmlab::devices
