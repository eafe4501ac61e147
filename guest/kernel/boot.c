#include "boot.h"

#include "arch.h"
#include "lib.h"

static struct vmlab_boot_info adopted_info;
static char adopted_command_line[VMLAB_BOOT_CMDLINE_MAX];
static const char* adopted_problem = "no boot information";
static unsigned adopted_entry;

/* Anything the boot path reads before the kernel's own page tables exist must
 * be inside the 4 GiB the VMM identity-maps (boot_info.h) and the 1 GiB the
 * PVH trampoline maps (boot.S). */
#define BOOT_MAPPED_LIMIT 0x40000000ull

bool boot_adopt(uint64_t boot_info_address, unsigned entry) {
  adopted_entry = entry;
  if (boot_info_address == 0 || boot_info_address >= BOOT_MAPPED_LIMIT - sizeof adopted_info) {
    adopted_problem = "boot_info address is outside the boot identity map";
    return false;
  }
  const struct vmlab_boot_info* source = (const struct vmlab_boot_info*)boot_info_address;
  if (source->magic != VMLAB_BOOT_MAGIC) {
    adopted_problem = "boot_info magic is wrong (not started by a vmlab VMM?)";
    return false;
  }
  if (source->version != VMLAB_BOOT_VERSION || source->size != VMLAB_BOOT_INFO_SIZE) {
    adopted_problem = "boot_info version or size does not match this kernel";
    return false;
  }
  if (source->mem_region_count > VMLAB_MAX_MEM_REGIONS ||
      source->device_count > VMLAB_MAX_DEVICES) {
    adopted_problem = "boot_info has more memory regions or devices than it can hold";
    return false;
  }
  memcpy(&adopted_info, source, sizeof adopted_info);

  uint32_t length = adopted_info.cmdline_length;
  if (adopted_info.cmdline_addr == 0) length = 0;
  if (length > VMLAB_BOOT_CMDLINE_MAX - 1) length = VMLAB_BOOT_CMDLINE_MAX - 1;
  if (length > 0 && adopted_info.cmdline_addr >= BOOT_MAPPED_LIMIT - length) {
    adopted_problem = "command line is outside the boot identity map";
    return false;
  }
  if (length > 0) memcpy(adopted_command_line, (const char*)adopted_info.cmdline_addr, length);
  /* The protocol gives the length and a NUL; stop at an early NUL as well. */
  length = (uint32_t)string_length_bounded(adopted_command_line, length);
  adopted_command_line[length] = '\0';
  adopted_info.cmdline_length = length;
  adopted_problem = NULL;
  return true;
}

const char* boot_problem(void) {
  return adopted_problem;
}
unsigned boot_entry_kind(void) {
  return adopted_entry;
}
const struct vmlab_boot_info* boot_info(void) {
  return &adopted_info;
}
const char* boot_command_line(void) {
  return adopted_command_line;
}

uint64_t boot_ram_bytes(void) {
  uint64_t total = 0;
  for (uint32_t index = 0; index < adopted_info.mem_region_count; ++index) {
    const struct vmlab_mem_region* region = &adopted_info.mem_regions[index];
    if (region->type != VMLAB_MEM_RAM) continue;
    uint64_t start = region->base;
    uint64_t end = region->base + region->length;
    if (end < start) end = UINT64_MAX; /* a length that wraps: clamp */
    if (start < VMLAB_BOOT_LOW_RESERVED) start = VMLAB_BOOT_LOW_RESERVED;
    if (end > start) total += end - start;
  }
  return total;
}

const struct vmlab_device* boot_find_device(enum vmlab_device_kind kind, unsigned occurrence) {
  for (uint32_t index = 0; index < adopted_info.device_count; ++index) {
    if (adopted_info.devices[index].kind != (uint32_t)kind) continue;
    if (occurrence == 0) return &adopted_info.devices[index];
    --occurrence;
  }
  return NULL;
}

/* Xen public header arch-x86/hvm/start_info.h: the structure a PVH loader
 * passes in EBX. Fields from memmap_paddr on exist only from version 1. */
struct hvm_start_info {
  uint32_t magic;
  uint32_t version;
  uint32_t flags;
  uint32_t nr_modules;
  uint64_t modlist_paddr;
  uint64_t cmdline_paddr;
  uint64_t rsdp_paddr;
  uint64_t memmap_paddr;
  uint32_t memmap_entries;
  uint32_t reserved;
};
_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info layout");

struct hvm_memmap_table_entry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
  uint32_t reserved;
};
_Static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "hvm_memmap_table_entry layout");

#define HVM_START_MAGIC_VALUE 0x336ec578u
#define HVM_MEMMAP_TYPE_RAM 1u

/* Used when the loader gives no memory map (start_info version 0): RAM from
 * 1 MiB to 16 MiB, which every PC-compatible machine QEMU models has. */
#define PVH_DEFAULT_RAM_END 0x1000000ull

static struct vmlab_boot_info pvh_info;

static struct vmlab_device* pvh_add_device(uint32_t kind, uint64_t base, uint64_t size,
                                           uint32_t irq) {
  if (pvh_info.device_count == VMLAB_MAX_DEVICES) return NULL;
  struct vmlab_device* device = &pvh_info.devices[pvh_info.device_count++];
  device->kind = kind;
  device->base = base;
  device->size = size;
  device->irq = irq;
  return device;
}

/* The master on the primary ATA channel of a PC (QEMU "pc": -drive
 * if=ide,index=0). The firmware may have left the slave selected, so select
 * the master and give it 400 ns (four alternate-status reads) first. An
 * absent device reads 0 (QEMU's IDE model) and a missing controller floats
 * the bus to 0xff; anything else is a device's status. */
#define PVH_ATA_BASE 0x1f0
#define PVH_ATA_ALTERNATE_STATUS 0x3f6
#define PVH_ATA_IRQ 14u

static void pvh_probe_ata(void) {
  port_write8(PVH_ATA_BASE + 6, 0xa0);
  for (unsigned read = 0; read < 4; ++read)
    (void)port_read8(PVH_ATA_ALTERNATE_STATUS);
  uint8_t status = port_read8(PVH_ATA_BASE + 7);
  if (status == 0 || status == 0xff) return;
  pvh_add_device(VMLAB_DEVICE_ATA, PVH_ATA_BASE, 8, PVH_ATA_IRQ);
}

/* The MC146818 RTC of a PC (QEMU "pc"; "microvm" has it unless rtc=off).
 * Status D has bit 7 (VRT) and nothing else: a missing chip floats the bus
 * to 0xff. */
#define PVH_RTC_INDEX 0x70
#define PVH_RTC_DATA 0x71
#define PVH_RTC_STATUS_D 0x0d

static void pvh_probe_rtc(void) {
  port_write8(PVH_RTC_INDEX, PVH_RTC_STATUS_D);
  uint8_t status_d = port_read8(PVH_RTC_DATA);
  if ((status_d & 0x7f) != 0) return;
  pvh_add_device(VMLAB_DEVICE_RTC_MC146818, PVH_RTC_INDEX, 2, VMLAB_NO_IRQ);
}

/* A number as Linux's memparse() reads one: decimal or 0x hexadecimal, then
 * an optional K, M or G. Advances *cursor; false if there are no digits. */
static bool pvh_parse_number(const char** cursor, const char* end, uint64_t* value) {
  const char* text = *cursor;
  unsigned base = 10;
  if (end - text > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    base = 16;
    text += 2;
  }
  uint64_t result = 0;
  const char* digits = text;
  for (; text < end; ++text) {
    unsigned digit;
    char character = *text;
    if (character >= '0' && character <= '9') {
      digit = (unsigned)(character - '0');
    } else if (base == 16 && character >= 'a' && character <= 'f') {
      digit = (unsigned)(character - 'a' + 10);
    } else if (base == 16 && character >= 'A' && character <= 'F') {
      digit = (unsigned)(character - 'A' + 10);
    } else {
      break;
    }
    result = result * base + digit;
  }
  if (text == digits) return false;
  if (text < end && (*text == 'K' || *text == 'k')) {
    result <<= 10;
    ++text;
  } else if (text < end && (*text == 'M' || *text == 'm')) {
    result <<= 20;
    ++text;
  } else if (text < end && (*text == 'G' || *text == 'g')) {
    result <<= 30;
    ++text;
  }
  *cursor = text;
  *value = result;
  return true;
}

/* QEMU's microvm (with acpi=off) appends one token per virtio-mmio transport
 * that has a device, in the form Linux's virtio_mmio driver reads
 * (drivers/virtio/virtio_mmio.c): virtio_mmio.device=<size>@<base>:<irq>[:<id>].
 * Each becomes a virtio-mmio entry; the disk driver reads DeviceID to keep
 * only block devices, because the window lies above the 1 GiB this
 * trampoline maps. */
static void pvh_parse_virtio_mmio(const char* command_line, uint32_t length) {
  static const char key[] = "virtio_mmio.device=";
  const char* end = command_line + length;
  const char* cursor = command_line;
  while (cursor < end) {
    while (cursor < end && (*cursor == ' ' || *cursor == '\t'))
      ++cursor;
    const char* token = cursor;
    while (cursor < end && *cursor != ' ' && *cursor != '\t')
      ++cursor;
    size_t key_length = sizeof key - 1;
    if ((size_t)(cursor - token) <= key_length || !text_equals(token, key_length, key)) continue;
    const char* field = token + key_length;
    uint64_t size;
    uint64_t base;
    uint64_t irq;
    if (!pvh_parse_number(&field, cursor, &size) || field == cursor || *field++ != '@' ||
        !pvh_parse_number(&field, cursor, &base) || field == cursor || *field++ != ':' ||
        !pvh_parse_number(&field, cursor, &irq)) {
      continue;
    }
    /* Only the 16 ISA lines reach the 8259s; microvm's second IOAPIC (if
     * any) puts its transports on GSIs above them. */
    struct vmlab_device* device = pvh_add_device(VMLAB_DEVICE_VIRTIO_MMIO, base, size,
                                                 irq < 16 ? (uint32_t)irq : VMLAB_NO_IRQ);
    if (device != NULL) device->flags = VMLAB_DEVICE_FLAG_MMIO;
  }
}

static void pvh_add_region(uint64_t base, uint64_t length, uint32_t type) {
  if (pvh_info.mem_region_count == VMLAB_MAX_MEM_REGIONS) return;
  struct vmlab_mem_region* region = &pvh_info.mem_regions[pvh_info.mem_region_count++];
  region->base = base;
  region->length = length;
  region->type = type;
}

struct vmlab_boot_info* pvh_build_boot_info(uint64_t start_info_address) {
  const struct hvm_start_info* start = (const struct hvm_start_info*)start_info_address;
  if (start_info_address == 0 || start_info_address >= BOOT_MAPPED_LIMIT ||
      start->magic != HVM_START_MAGIC_VALUE) {
    return &pvh_info; /* magic stays 0: boot_adopt reports it */
  }
  pvh_info.magic = VMLAB_BOOT_MAGIC;
  pvh_info.version = VMLAB_BOOT_VERSION;
  pvh_info.size = VMLAB_BOOT_INFO_SIZE;
  pvh_info.flags = VMLAB_BOOT_FLAG_PVH;

  /* The PVH ABI treats 0 in an address field as "not present". */
  if (start->cmdline_paddr != 0 && start->cmdline_paddr < BOOT_MAPPED_LIMIT) {
    pvh_info.cmdline_addr = start->cmdline_paddr;
    pvh_info.cmdline_length = (uint32_t)string_length_bounded((const char*)start->cmdline_paddr,
                                                              VMLAB_BOOT_CMDLINE_MAX - 1);
  }

  /* Low memory holds the loader's tables and the BIOS areas: never usable. */
  pvh_add_region(0, VMLAB_BOOT_LOW_RESERVED, VMLAB_MEM_RESERVED);
  bool have_map = start->version >= 1 && start->memmap_paddr != 0 &&
                  start->memmap_paddr < BOOT_MAPPED_LIMIT && start->memmap_entries != 0;
  if (have_map) {
    const struct hvm_memmap_table_entry* entries =
        (const struct hvm_memmap_table_entry*)start->memmap_paddr;
    for (uint32_t index = 0; index < start->memmap_entries; ++index) {
      if (entries[index].type != HVM_MEMMAP_TYPE_RAM) continue;
      uint64_t base = entries[index].addr;
      uint64_t end = base + entries[index].size;
      if (end <= VMLAB_BOOT_LOW_RESERVED) continue;
      if (base < VMLAB_BOOT_LOW_RESERVED) base = VMLAB_BOOT_LOW_RESERVED;
      pvh_add_region(base, end - base, VMLAB_MEM_RAM);
    }
  } else {
    pvh_add_region(VMLAB_BOOT_LOW_RESERVED, PVH_DEFAULT_RAM_END - VMLAB_BOOT_LOW_RESERVED,
                   VMLAB_MEM_RAM);
  }

  /* The standard PC devices QEMU's "pc" machine has at their ISA addresses. */
  pvh_add_device(VMLAB_DEVICE_UART16550, 0x3f8, 8, 4);
  pvh_add_device(VMLAB_DEVICE_PIC8259, 0x20, 2, VMLAB_NO_IRQ);
  pvh_add_device(VMLAB_DEVICE_PIC8259, 0xa0, 2, VMLAB_NO_IRQ);
  pvh_add_device(VMLAB_DEVICE_PIT8254, 0x40, 4, 0);
  pvh_add_device(VMLAB_DEVICE_DEBUGCON, 0xe9, 1, VMLAB_NO_IRQ);
  pvh_add_device(VMLAB_DEVICE_EXIT_PORT, 0xf4, 4, VMLAB_NO_IRQ);
  pvh_probe_rtc();
  /* The disk, if the machine has one: IDE on "pc", virtio-mmio on "microvm". */
  pvh_probe_ata();
  if (pvh_info.cmdline_length != 0) {
    pvh_parse_virtio_mmio((const char*)pvh_info.cmdline_addr, pvh_info.cmdline_length);
  }
  return &pvh_info;
}
