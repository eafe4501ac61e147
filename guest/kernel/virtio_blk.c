#include "virtio_blk.h"

#include "arch.h"
#include "device_memory.h"
#include "irq.h"
#include "lib.h"
#include "memory.h"
#include "pic.h"
#include "port_io.h"

/* virtio-mmio registers, version 2 layout (virtio 1.2, 4.2.2). */
#define MMIO_MAGIC_VALUE 0x000
#define MMIO_VERSION 0x004
#define MMIO_DEVICE_ID 0x008
#define MMIO_DEVICE_FEATURES 0x010
#define MMIO_DEVICE_FEATURES_SELECT 0x014
#define MMIO_DRIVER_FEATURES 0x020
#define MMIO_DRIVER_FEATURES_SELECT 0x024
#define MMIO_QUEUE_SELECT 0x030
#define MMIO_QUEUE_SIZE_MAXIMUM 0x034
#define MMIO_QUEUE_SIZE 0x038
#define MMIO_QUEUE_READY 0x044
#define MMIO_QUEUE_NOTIFY 0x050
#define MMIO_INTERRUPT_STATUS 0x060
#define MMIO_INTERRUPT_ACKNOWLEDGE 0x064
#define MMIO_STATUS 0x070
#define MMIO_QUEUE_DESCRIPTOR_LOW 0x080
#define MMIO_QUEUE_DESCRIPTOR_HIGH 0x084
#define MMIO_QUEUE_DRIVER_LOW 0x090
#define MMIO_QUEUE_DRIVER_HIGH 0x094
#define MMIO_QUEUE_DEVICE_LOW 0x0a0
#define MMIO_QUEUE_DEVICE_HIGH 0x0a4
#define MMIO_CONFIG_GENERATION 0x0fc
#define MMIO_CONFIG 0x100
#define MMIO_WINDOW_SIZE 0x200

#define MMIO_MAGIC 0x74726976u /* "virt" */
#define MMIO_VERSION_MODERN 2u
#define DEVICE_ID_BLOCK 2u

#define INTERRUPT_USED_BUFFER (1u << 0)
#define INTERRUPT_CONFIGURATION_CHANGE (1u << 1)

/* Device status bits (virtio 1.2, 2.1). */
#define STATUS_ACKNOWLEDGE 1u
#define STATUS_DRIVER 2u
#define STATUS_DRIVER_OK 4u
#define STATUS_FEATURES_OK 8u
#define STATUS_DEVICE_NEEDS_RESET 64u
#define STATUS_FAILED 128u

/* Feature bits (virtio 1.2, 5.2.3 and 6). */
#define FEATURE(bit) (1ull << (bit))
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

/* struct virtio_blk_config (virtio 1.2, 5.2.4), byte offsets. */
#define CONFIG_CAPACITY 0
#define CONFIG_SIZE_MAX 8
#define CONFIG_SEG_MAX 12

/* Request types and status values (virtio 1.2, 5.2.6). */
#define VIRTIO_BLK_T_IN 0u
#define VIRTIO_BLK_T_OUT 1u
#define VIRTIO_BLK_T_FLUSH 4u
#define VIRTIO_BLK_T_GET_ID 8u
#define VIRTIO_BLK_S_OK 0u
#define VIRTIO_BLK_S_IOERR 1u
#define VIRTIO_BLK_S_UNSUPP 2u
#define VIRTIO_BLK_ID_BYTES 20u
#define STATUS_NOT_WRITTEN 0xffu /* a value the device never writes */

/* Split virtqueue layout (virtio 1.2, 2.7). */
#define DESCRIPTOR_NEXT 1u
#define DESCRIPTOR_WRITE 2u /* device writes the buffer */
#define DESCRIPTOR_INDIRECT 4u
#define AVAILABLE_NO_INTERRUPT 1u
#define USED_NO_NOTIFY 1u

struct virtq_descriptor {
  uint64_t address;
  uint32_t length;
  uint16_t flags;
  uint16_t next;
};
_Static_assert(sizeof(struct virtq_descriptor) == 16, "virtq_desc layout (virtio 1.2, 2.7.5)");

struct virtq_used_element {
  uint32_t id;
  uint32_t length;
};

/* The rings are shared with the device: every access goes through a
 * volatile pointer, and each ring lives in its own zeroed frame. */
struct virtq_available {
  uint16_t flags;
  uint16_t index;
  uint16_t ring[]; /* queue size entries, then used_event (EVENT_IDX) */
};

struct virtq_used {
  uint16_t flags;
  uint16_t index;
  struct virtq_used_element ring[]; /* queue size entries, then avail_event */
};

/* The largest queue this driver sets up: each ring then fits one frame
 * (16 * 256 bytes of descriptors; 6 + 8 * 256 bytes of used ring). */
#define QUEUE_SIZE_LIMIT 256u

/* Per in-flight request: the header the device reads, the status byte it
 * writes, and the request's indirect descriptor table, in one slot. */
struct virtio_blk_request_header {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};
#define SLOT_SIZE 1024u
#define SLOT_HEADER 0u
#define SLOT_STATUS 16u
#define SLOT_TABLE 64u
#define SLOT_DESCRIPTORS (VIRTIO_BLK_MAXIMUM_SEGMENTS + 2u)
#define SLOTS_PER_FRAME (PAGE_SIZE / SLOT_SIZE)
_Static_assert(SLOT_TABLE + SLOT_DESCRIPTORS * sizeof(struct virtq_descriptor) <= SLOT_SIZE,
               "a slot holds its indirect table");

/* Polling gives up after this many TSC cycles (about 30 s at 2 GHz). */
#define POLL_TIMEOUT_CYCLES (1ull << 36)
/* While polling the used ring, look at the device status this often (an
 * MMIO read, which exits) for DEVICE_NEEDS_RESET. */
#define POLLS_PER_STATUS_CHECK 0x10000u

static volatile uint8_t* registers;
static uint32_t irq_line = VMLAB_NO_IRQ;
static enum disk_completion completion_mode = DISK_COMPLETION_POLLED;
static uint64_t negotiated;
static uint64_t capacity;
static uint32_t size_max;
static uint32_t seg_max;
static char identity[VIRTIO_BLK_ID_BYTES + 1];
static char problem[160];

static uint32_t queue_size;
static volatile struct virtq_descriptor* descriptors;
static volatile struct virtq_available* available;
static volatile struct virtq_used* used;
static uint64_t slot_frames[QUEUE_SIZE_LIMIT / SLOTS_PER_FRAME];
static uint64_t identity_frame;

/* The current batch: requests queued since the last submit. */
static uint32_t batch_count;
static uint32_t descriptors_taken;
static uint16_t next_available; /* avail->idx once the batch is published */
static uint16_t last_used;      /* used->idx the driver has consumed up to */
static uint16_t slot_of_head[QUEUE_SIZE_LIMIT];
static uint16_t head_of_slot[QUEUE_SIZE_LIMIT];
static uint8_t slot_operation[QUEUE_SIZE_LIMIT];
static uint64_t slot_sector[QUEUE_SIZE_LIMIT];
static uint64_t requests;
static uint64_t notifications;

/* Set by the interrupt handler (see ata.c for why plain volatile suffices). */
static volatile bool configuration_changed;

const char* virtio_blk_problem(void) {
  return problem;
}
uint64_t virtio_blk_capacity(void) {
  return capacity;
}
const char* virtio_blk_identity(void) {
  return identity;
}
bool virtio_blk_indirect(void) {
  return (negotiated & FEATURE(VIRTIO_RING_F_INDIRECT_DESC)) != 0;
}
bool virtio_blk_event_index(void) {
  return (negotiated & FEATURE(VIRTIO_RING_F_EVENT_IDX)) != 0;
}
bool virtio_blk_read_only(void) {
  return (negotiated & FEATURE(VIRTIO_BLK_F_RO)) != 0;
}
uint32_t virtio_blk_queue_size(void) {
  return queue_size;
}
uint32_t virtio_blk_seg_max(void) {
  return seg_max;
}
uint32_t virtio_blk_size_max(void) {
  return size_max;
}
uint64_t virtio_blk_requests(void) {
  return requests;
}
uint64_t virtio_blk_notifications(void) {
  return notifications;
}

static uint32_t read_register(uint32_t offset) {
  return mmio_read32(registers + offset);
}

static void write_register(uint32_t offset, uint32_t value) {
  mmio_write32(registers + offset, value);
}

/* A full barrier, for the one store-then-load order x86 does not keep:
 * publishing avail->idx, then reading whether the device wants a
 * notification (virtio 1.2, 2.7.13.4). A locked read-modify-write of the
 * stack orders like mfence (Intel SDM vol. 3A, 8.2.2) and is an ordinary
 * integer instruction for any emulator. */
static inline void full_barrier(void) {
  __asm__ volatile("lock orl $0, (%%rsp)" : : : "memory", "cc");
}

static inline void compiler_barrier(void) {
  __asm__ volatile("" : : : "memory");
}

static void fail_device(void) {
  write_register(MMIO_STATUS, read_register(MMIO_STATUS) | STATUS_FAILED);
}

static volatile uint8_t* map_window(const struct vmlab_device* device) {
  if ((device->flags & VMLAB_DEVICE_FLAG_MMIO) == 0) return NULL;
  return device_memory_map(device->base, MMIO_WINDOW_SIZE);
}

bool virtio_blk_probe(const struct vmlab_device* device) {
  if (device->kind != VMLAB_DEVICE_VIRTIO_MMIO) return false;
  volatile uint8_t* window = map_window(device);
  if (window == NULL) return false;
  uint32_t magic = mmio_read32(window + MMIO_MAGIC_VALUE);
  uint32_t version = mmio_read32(window + MMIO_VERSION);
  uint32_t device_id = mmio_read32(window + MMIO_DEVICE_ID);
  if (magic == MMIO_MAGIC && device_id == DEVICE_ID_BLOCK && version != MMIO_VERSION_MODERN) {
    format_to(problem, sizeof problem,
              "the virtio-blk device at 0x%lx has register layout version %u, this driver needs "
              "2 (QEMU: -global virtio-mmio.force-legacy=false)",
              device->base, version);
  }
  return magic == MMIO_MAGIC && version == MMIO_VERSION_MODERN && device_id == DEVICE_ID_BLOCK;
}

/* A 64-bit configuration field as two 32-bit reads, repeated if the device
 * changed its configuration in between (virtio 1.2, 2.5.1 and 4.2.2.2). */
static uint64_t read_config64(uint32_t offset) {
  for (;;) {
    uint32_t generation = read_register(MMIO_CONFIG_GENERATION);
    uint64_t low = read_register(MMIO_CONFIG + offset);
    uint64_t high = read_register(MMIO_CONFIG + offset + 4);
    if (read_register(MMIO_CONFIG_GENERATION) == generation) return low | high << 32;
  }
}

static void virtio_blk_interrupt(void) {
  uint32_t status = read_register(MMIO_INTERRUPT_STATUS);
  write_register(MMIO_INTERRUPT_ACKNOWLEDGE, status);
  if ((status & INTERRUPT_CONFIGURATION_CHANGE) != 0) configuration_changed = true;
}

static bool negotiate_features(const struct virtio_blk_settings* settings) {
  write_register(MMIO_DEVICE_FEATURES_SELECT, 0);
  uint64_t offered = read_register(MMIO_DEVICE_FEATURES);
  write_register(MMIO_DEVICE_FEATURES_SELECT, 1);
  offered |= (uint64_t)read_register(MMIO_DEVICE_FEATURES) << 32;
  if ((offered & FEATURE(VIRTIO_F_VERSION_1)) == 0) {
    format_to(problem, sizeof problem,
              "the virtio-blk device does not offer VIRTIO_F_VERSION_1 (a legacy device)");
    return false;
  }
  uint64_t wanted = FEATURE(VIRTIO_F_VERSION_1) | FEATURE(VIRTIO_BLK_F_SIZE_MAX) |
                    FEATURE(VIRTIO_BLK_F_SEG_MAX) | FEATURE(VIRTIO_BLK_F_FLUSH) |
                    FEATURE(VIRTIO_BLK_F_RO);
  if (settings->indirect) wanted |= FEATURE(VIRTIO_RING_F_INDIRECT_DESC);
  if (settings->event_index) wanted |= FEATURE(VIRTIO_RING_F_EVENT_IDX);
  negotiated = offered & wanted;
  write_register(MMIO_DRIVER_FEATURES_SELECT, 0);
  write_register(MMIO_DRIVER_FEATURES, (uint32_t)negotiated);
  write_register(MMIO_DRIVER_FEATURES_SELECT, 1);
  write_register(MMIO_DRIVER_FEATURES, (uint32_t)(negotiated >> 32));

  /* The device may refuse the subset: FEATURES_OK must read back set
   * (virtio 1.2, 3.1.1 step 6). */
  uint32_t status = read_register(MMIO_STATUS) | STATUS_FEATURES_OK;
  write_register(MMIO_STATUS, status);
  if ((read_register(MMIO_STATUS) & STATUS_FEATURES_OK) == 0) {
    format_to(problem, sizeof problem,
              "the virtio-blk device did not accept features 0x%lx (FEATURES_OK stayed clear)",
              negotiated);
    return false;
  }
  return true;
}

/* Queue 0 in three zeroed frames; their physical addresses go to the device
 * (virtio 1.2, 4.2.3.2). */
static bool set_up_queue(void) {
  write_register(MMIO_QUEUE_SELECT, 0);
  if (read_register(MMIO_QUEUE_READY) != 0) {
    format_to(problem, sizeof problem, "virtio-blk queue 0 is already in use after a reset");
    return false;
  }
  uint32_t maximum = read_register(MMIO_QUEUE_SIZE_MAXIMUM);
  if (maximum == 0) {
    format_to(problem, sizeof problem, "the virtio-blk device has no queue 0");
    return false;
  }
  /* A split queue's size is a power of 2 (virtio 1.2, 2.7). */
  queue_size = QUEUE_SIZE_LIMIT;
  while (queue_size > maximum)
    queue_size /= 2;

  uint64_t descriptor_frame = frame_allocate();
  uint64_t available_frame = frame_allocate();
  uint64_t used_frame = frame_allocate();
  identity_frame = frame_allocate();
  bool have_frames =
      descriptor_frame != 0 && available_frame != 0 && used_frame != 0 && identity_frame != 0;
  for (uint32_t index = 0; index < queue_size / SLOTS_PER_FRAME && have_frames; ++index) {
    slot_frames[index] = frame_allocate();
    have_frames = slot_frames[index] != 0;
  }
  if (!have_frames) {
    format_to(problem, sizeof problem, "out of memory for the virtio-blk queue");
    return false;
  }
  descriptors = physical_to_virtual(descriptor_frame);
  available = physical_to_virtual(available_frame);
  used = physical_to_virtual(used_frame);

  write_register(MMIO_QUEUE_SIZE, queue_size);
  write_register(MMIO_QUEUE_DESCRIPTOR_LOW, (uint32_t)descriptor_frame);
  write_register(MMIO_QUEUE_DESCRIPTOR_HIGH, (uint32_t)(descriptor_frame >> 32));
  write_register(MMIO_QUEUE_DRIVER_LOW, (uint32_t)available_frame);
  write_register(MMIO_QUEUE_DRIVER_HIGH, (uint32_t)(available_frame >> 32));
  write_register(MMIO_QUEUE_DEVICE_LOW, (uint32_t)used_frame);
  write_register(MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(used_frame >> 32));
  write_register(MMIO_QUEUE_READY, 1);
  next_available = 0;
  last_used = 0;
  return true;
}

static uint64_t slot_physical(uint32_t slot) {
  return slot_frames[slot / SLOTS_PER_FRAME] + (slot % SLOTS_PER_FRAME) * SLOT_SIZE;
}

static volatile uint8_t* slot_virtual(uint32_t slot) {
  return physical_to_virtual(slot_physical(slot));
}

/* used_event sits after the available ring, avail_event after the used ring
 * (virtio 1.2, 2.7.6 and 2.7.8). */
static volatile uint16_t* used_event(void) {
  return &available->ring[queue_size];
}

static volatile uint16_t* available_event(void) {
  return (volatile uint16_t*)&used->ring[queue_size];
}

/* The data segments of a request: one per page, as for a buffer whose pages
 * are not contiguous, and none longer than size_max. */
static uint32_t segment_limit(void) {
  return size_max != 0 && size_max < PAGE_SIZE ? size_max : (uint32_t)PAGE_SIZE;
}

static uint32_t count_segments(uint64_t physical, uint32_t bytes) {
  uint32_t limit = segment_limit();
  uint32_t count = 0;
  uint64_t end = physical + bytes;
  while (physical < end) {
    uint64_t page_end = (physical & ~(PAGE_SIZE - 1)) + PAGE_SIZE;
    uint64_t chunk_end = physical + limit < page_end ? physical + limit : page_end;
    if (chunk_end > end) chunk_end = end;
    physical = chunk_end;
    ++count;
  }
  return count;
}

uint32_t virtio_blk_batch_limit(uint32_t request_bytes) {
  /* The most segments a request needs where it can start: requests lie back
   * to back from a page-aligned buffer, so at multiples of
   * gcd(request_bytes, PAGE_SIZE) into a page. */
  if (request_bytes == 0) return queue_size;
  uint64_t step = request_bytes & (0u - request_bytes);
  if (step > PAGE_SIZE) step = PAGE_SIZE;
  uint32_t segments = 0;
  for (uint64_t offset = 0; offset < PAGE_SIZE; offset += step) {
    uint32_t here = count_segments(offset, request_bytes);
    if (here > segments) segments = here;
  }
  uint32_t allowed = VIRTIO_BLK_MAXIMUM_SEGMENTS;
  if (seg_max != 0 && seg_max < allowed) allowed = seg_max;
  if (segments > allowed) {
    format_to(problem, sizeof problem,
              "a request of %u bytes needs %u segments; the driver allows %u (seg_max %u, "
              "size_max %u): lower disk-request",
              request_bytes, segments, allowed, seg_max, size_max);
    return 0;
  }
  if (virtio_blk_indirect()) return queue_size;
  uint32_t limit = queue_size / (segments + 2);
  if (limit == 0) {
    format_to(problem, sizeof problem,
              "a request of %u bytes needs %u descriptors; the queue has %u: lower disk-request",
              request_bytes, segments + 2, queue_size);
  }
  return limit;
}

static void set_descriptor(volatile struct virtq_descriptor* descriptor, uint64_t address,
                           uint32_t length, uint16_t flags, uint16_t next) {
  descriptor->address = address;
  descriptor->length = length;
  descriptor->flags = flags;
  descriptor->next = next;
}

static bool queue_request(uint32_t type, uint64_t sector, uint64_t buffer_physical, uint32_t bytes,
                          bool device_writes) {
  uint32_t segments = bytes == 0 ? 0 : count_segments(buffer_physical, bytes);
  uint32_t chain = segments + 2; /* header, data segments, status */
  uint32_t allowed = VIRTIO_BLK_MAXIMUM_SEGMENTS;
  if (seg_max != 0 && seg_max < allowed) allowed = seg_max;
  if (segments > allowed) {
    format_to(problem, sizeof problem, "a virtio-blk request needs %u segments, at most %u fit",
              segments, allowed);
    return false;
  }
  uint32_t needed = virtio_blk_indirect() ? 1 : chain;
  if (batch_count == queue_size || descriptors_taken + needed > queue_size) {
    format_to(problem, sizeof problem, "the virtio-blk batch is full (%u requests)", batch_count);
    return false;
  }

  uint32_t slot = batch_count;
  volatile uint8_t* slot_memory = slot_virtual(slot);
  volatile struct virtio_blk_request_header* header =
      (volatile struct virtio_blk_request_header*)(slot_memory + SLOT_HEADER);
  header->type = type;
  header->reserved = 0;
  header->sector = sector;
  slot_memory[SLOT_STATUS] = STATUS_NOT_WRITTEN;

  /* Chain in the slot's own table (indirect) or in the ring's table from
   * descriptors_taken on; "next" indexes the table the chain is in
   * (virtio 1.2, 2.7.5.3). */
  uint16_t head = (uint16_t)descriptors_taken;
  volatile struct virtq_descriptor* table;
  uint16_t first;
  if (virtio_blk_indirect()) {
    table = (volatile struct virtq_descriptor*)(slot_memory + SLOT_TABLE);
    first = 0;
  } else {
    table = descriptors;
    first = head;
  }
  uint16_t position = first;
  set_descriptor(&table[position], slot_physical(slot) + SLOT_HEADER,
                 sizeof(struct virtio_blk_request_header), DESCRIPTOR_NEXT,
                 (uint16_t)(position + 1));
  ++position;
  uint64_t cursor = buffer_physical;
  uint64_t end = buffer_physical + bytes;
  uint32_t limit = segment_limit();
  while (cursor < end) {
    uint64_t page_end = (cursor & ~(PAGE_SIZE - 1)) + PAGE_SIZE;
    uint64_t chunk_end = cursor + limit < page_end ? cursor + limit : page_end;
    if (chunk_end > end) chunk_end = end;
    set_descriptor(&table[position], cursor, (uint32_t)(chunk_end - cursor),
                   (uint16_t)(DESCRIPTOR_NEXT | (device_writes ? DESCRIPTOR_WRITE : 0)),
                   (uint16_t)(position + 1));
    ++position;
    cursor = chunk_end;
  }
  set_descriptor(&table[position], slot_physical(slot) + SLOT_STATUS, 1, DESCRIPTOR_WRITE, 0);
  if (virtio_blk_indirect()) {
    set_descriptor(&descriptors[head], slot_physical(slot) + SLOT_TABLE,
                   chain * (uint32_t)sizeof(struct virtq_descriptor), DESCRIPTOR_INDIRECT, 0);
  }

  available->ring[(uint16_t)(next_available + batch_count) % queue_size] = head;
  slot_of_head[head] = (uint16_t)slot;
  head_of_slot[slot] = head;
  slot_operation[slot] = (uint8_t)type;
  slot_sector[slot] = sector;
  descriptors_taken += needed;
  ++batch_count;
  ++requests;
  return true;
}

bool virtio_blk_queue(enum virtio_blk_operation operation, uint64_t sector,
                      uint64_t buffer_physical, uint32_t bytes) {
  switch (operation) {
    case VIRTIO_BLK_OPERATION_READ:
      return queue_request(VIRTIO_BLK_T_IN, sector, buffer_physical, bytes, true);
    case VIRTIO_BLK_OPERATION_WRITE:
      if (virtio_blk_read_only()) {
        format_to(problem, sizeof problem, "the virtio-blk disk is read-only (VIRTIO_BLK_F_RO)");
        return false;
      }
      return queue_request(VIRTIO_BLK_T_OUT, sector, buffer_physical, bytes, false);
    case VIRTIO_BLK_OPERATION_FLUSH:
      /* Without VIRTIO_BLK_F_FLUSH the device has no volatile write cache
       * to flush (virtio 1.2, 5.2.6; Linux's driver assumes the same). */
      if ((negotiated & FEATURE(VIRTIO_BLK_F_FLUSH)) == 0) return true;
      return queue_request(VIRTIO_BLK_T_FLUSH, 0, 0, 0, false);
  }
  return false;
}

/* vring_need_event (virtio 1.2, 2.7.10 and 2.7.7): whether moving an index
 * from old to new passes the other side's event index. */
static bool need_event(uint16_t event, uint16_t new_index, uint16_t old_index) {
  return (uint16_t)(new_index - event - 1) < (uint16_t)(new_index - old_index);
}

static bool device_needs_reset(void) {
  if ((read_register(MMIO_STATUS) & STATUS_DEVICE_NEEDS_RESET) == 0) return false;
  format_to(problem, sizeof problem,
            "the virtio-blk device set DEVICE_NEEDS_RESET (it rejected a request)");
  return true;
}

static bool wait_for_used(uint16_t target) {
  if (completion_mode == DISK_COMPLETION_INTERRUPT) {
    /* Interrupts stay disabled around the check, and sti; hlt cannot miss
     * one that arrives in between (arch.h). */
    while (used->index != target) {
      if (configuration_changed) {
        configuration_changed = false;
        if (device_needs_reset()) return false;
      }
      interrupts_enable_and_wait();
    }
    return true;
  }
  uint64_t start = read_timestamp_counter();
  uint32_t polls = 0;
  while (used->index != target) {
    if (++polls == POLLS_PER_STATUS_CHECK) {
      polls = 0;
      if (device_needs_reset()) return false;
      if (read_timestamp_counter() - start > POLL_TIMEOUT_CYCLES) {
        format_to(problem, sizeof problem,
                  "virtio-blk requests did not complete (used index %u, expected %u)", used->index,
                  target);
        return false;
      }
    }
  }
  return true;
}

static const char* operation_name(uint8_t type) {
  switch (type) {
    case VIRTIO_BLK_T_IN:
      return "read";
    case VIRTIO_BLK_T_OUT:
      return "write";
    case VIRTIO_BLK_T_FLUSH:
      return "flush";
    case VIRTIO_BLK_T_GET_ID:
      return "get-id";
    default:
      return "request";
  }
}

bool virtio_blk_submit(void) {
  if (batch_count == 0) return true;
  uint16_t old_index = next_available;
  uint16_t new_index = (uint16_t)(old_index + batch_count);
  uint16_t target = (uint16_t)(last_used + batch_count);
  /* Used buffer notification suppression (virtio 1.2, 2.7.7): with
   * EVENT_IDX, one interrupt when the last request of the batch is used;
   * when polling, none (an event index the used index has just passed). */
  if (virtio_blk_event_index()) {
    *used_event() = completion_mode == DISK_COMPLETION_INTERRUPT ? (uint16_t)(target - 1)
                                                                 : (uint16_t)(last_used - 1);
  }
  /* Descriptors and ring entries before the index that publishes them
   * (virtio 1.2, 2.7.13.3): x86 keeps stores in order, the compiler must too. */
  compiler_barrier();
  available->index = new_index;
  full_barrier();
  bool notify = virtio_blk_event_index() ? need_event(*available_event(), new_index, old_index)
                                         : (used->flags & USED_NO_NOTIFY) == 0;
  if (notify) {
    write_register(MMIO_QUEUE_NOTIFY, 0);
    ++notifications;
  }
  next_available = new_index;

  uint32_t count = batch_count;
  batch_count = 0;
  descriptors_taken = 0;
  if (!wait_for_used(target)) return false;
  compiler_barrier();

  bool seen[QUEUE_SIZE_LIMIT] = {false};
  for (uint32_t index = 0; index < count; ++index) {
    uint32_t head = used->ring[(uint16_t)(last_used + index) % queue_size].id;
    uint32_t slot = head < queue_size ? slot_of_head[head] : count;
    if (slot >= count || head_of_slot[slot] != head || seen[slot]) {
      format_to(problem, sizeof problem,
                "the virtio-blk device returned descriptor %u, which is not a request of this "
                "batch or was returned twice",
                head);
      return false;
    }
    seen[slot] = true;
  }
  last_used = target;
  for (uint32_t slot = 0; slot < count; ++slot) {
    uint8_t status = slot_virtual(slot)[SLOT_STATUS];
    if (status == VIRTIO_BLK_S_OK) continue;
    const char* meaning = status == VIRTIO_BLK_S_IOERR    ? "I/O error"
                          : status == VIRTIO_BLK_S_UNSUPP ? "unsupported"
                          : status == STATUS_NOT_WRITTEN  ? "status not written"
                                                          : "unknown status";
    format_to(problem, sizeof problem, "virtio-blk %s at sector %lu failed: status %u (%s)",
              operation_name(slot_operation[slot]), slot_sector[slot], status, meaning);
    return false;
  }
  return true;
}

static void read_identity(void) {
  identity[0] = '\0';
  if (!queue_request(VIRTIO_BLK_T_GET_ID, 0, identity_frame, VIRTIO_BLK_ID_BYTES, true)) return;
  --requests; /* not part of any workload's count */
  if (!virtio_blk_submit()) {
    problem[0] = '\0'; /* GET_ID is optional: an old device answers UNSUPP */
    return;
  }
  /* The string is NUL-padded, and not terminated if it is 20 bytes long. */
  memcpy(identity, physical_to_virtual(identity_frame), VIRTIO_BLK_ID_BYTES);
  identity[VIRTIO_BLK_ID_BYTES] = '\0';
}

bool virtio_blk_init(const struct vmlab_device* device,
                     const struct virtio_blk_settings* settings) {
  problem[0] = '\0';
  registers = map_window(device);
  if (registers == NULL) {
    format_to(problem, sizeof problem, "cannot map the virtio-mmio window at 0x%lx", device->base);
    return false;
  }
  if (read_register(MMIO_MAGIC_VALUE) != MMIO_MAGIC ||
      read_register(MMIO_VERSION) != MMIO_VERSION_MODERN ||
      read_register(MMIO_DEVICE_ID) != DEVICE_ID_BLOCK) {
    format_to(problem, sizeof problem,
              "no virtio-blk device (version 2) at 0x%lx: magic 0x%x version %u device %u",
              device->base, read_register(MMIO_MAGIC_VALUE), read_register(MMIO_VERSION),
              read_register(MMIO_DEVICE_ID));
    return false;
  }
  irq_line = device->irq;
  completion_mode = DISK_COMPLETION_POLLED;

  /* virtio 1.2, 3.1.1 and 4.2.3.1: reset, complete when 0 reads back. */
  write_register(MMIO_STATUS, 0);
  uint64_t start = read_timestamp_counter();
  while (read_register(MMIO_STATUS) != 0) {
    if (read_timestamp_counter() - start > POLL_TIMEOUT_CYCLES) {
      format_to(problem, sizeof problem, "the virtio-blk device at 0x%lx does not reset",
                device->base);
      return false;
    }
  }
  write_register(MMIO_STATUS, STATUS_ACKNOWLEDGE);
  write_register(MMIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
  if (!negotiate_features(settings) || !set_up_queue()) {
    fail_device();
    return false;
  }
  capacity = read_config64(CONFIG_CAPACITY);
  size_max = (negotiated & FEATURE(VIRTIO_BLK_F_SIZE_MAX)) != 0
                 ? read_register(MMIO_CONFIG + CONFIG_SIZE_MAX)
                 : 0;
  seg_max = (negotiated & FEATURE(VIRTIO_BLK_F_SEG_MAX)) != 0
                ? read_register(MMIO_CONFIG + CONFIG_SEG_MAX)
                : 0;
  if (size_max != 0 && size_max < DISK_SECTOR_SIZE) {
    format_to(problem, sizeof problem, "virtio-blk size_max %u is smaller than a sector", size_max);
    fail_device();
    return false;
  }

  if (settings->completion == DISK_COMPLETION_INTERRUPT) {
    if (!disk_irq_register(irq_line, virtio_blk_interrupt, "virtio device", problem,
                           sizeof problem)) {
      fail_device();
      return false;
    }
    configuration_changed = false;
    completion_mode = DISK_COMPLETION_INTERRUPT;
    pic_unmask(irq_line);
  } else if (!virtio_blk_event_index()) {
    /* A hint the device may ignore (virtio 1.2, 2.7.7). */
    available->flags = AVAILABLE_NO_INTERRUPT;
  }
  write_register(MMIO_STATUS, read_register(MMIO_STATUS) | STATUS_DRIVER_OK);
  if (device_needs_reset()) return false;
  read_identity();
  return true;
}

void virtio_blk_finish(void) {
  if (completion_mode == DISK_COMPLETION_INTERRUPT) {
    pic_mask(irq_line);
    irq_register(irq_line, NULL);
    completion_mode = DISK_COMPLETION_POLLED;
  }
}
