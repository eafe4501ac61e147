#include "lib.h"

/* String instructions rather than byte loops: one instruction to emulate when
 * CPL0 code is emulated (PLATFORM.md), and gcc cannot turn them back into a
 * call to the function being defined. */
void* memset(void* destination, int value, size_t length) {
  void* cursor = destination;
  __asm__ volatile("rep stosb" : "+D"(cursor), "+c"(length) : "a"(value) : "memory");
  return destination;
}

void* memcpy(void* destination, const void* source, size_t length) {
  void* cursor = destination;
  __asm__ volatile("rep movsb" : "+D"(cursor), "+S"(source), "+c"(length) : : "memory");
  return destination;
}

void* memmove(void* destination, const void* source, size_t length) {
  unsigned char* to = destination;
  const unsigned char* from = source;
  if (to <= from || to >= from + length) return memcpy(destination, source, length);
  /* Overlapping with the destination above the source: copy backwards, with
   * DF set only for this instruction (the System V ABI requires DF clear). */
  to += length - 1;
  from += length - 1;
  __asm__ volatile("std; rep movsb; cld" : "+D"(to), "+S"(from), "+c"(length) : : "memory");
  return destination;
}

int memcmp(const void* left, const void* right, size_t length) {
  const unsigned char* a = left;
  const unsigned char* b = right;
  for (size_t index = 0; index < length; ++index) {
    if (a[index] != b[index]) return a[index] < b[index] ? -1 : 1;
  }
  return 0;
}

size_t string_length_bounded(const char* text, size_t maximum) {
  size_t length = 0;
  while (length < maximum && text[length] != '\0')
    ++length;
  return length;
}

bool text_equals(const char* text, size_t length, const char* expected) {
  size_t expected_length = string_length_bounded(expected, length + 1);
  return expected_length == length && memcmp(text, expected, length) == 0;
}

struct output {
  char* buffer;
  size_t capacity;
  size_t length;
};

static void put_character(struct output* output, char character) {
  if (output->length + 1 < output->capacity) output->buffer[output->length++] = character;
}

static void put_unsigned(struct output* output, uint64_t value, unsigned base) {
  char digits[20];
  size_t count = 0;
  do {
    unsigned digit = (unsigned)(value % base);
    digits[count++] = (char)(digit < 10 ? '0' + digit : 'a' + digit - 10);
    value /= base;
  } while (value != 0);
  while (count > 0)
    put_character(output, digits[--count]);
}

size_t format_text(char* buffer, size_t capacity, const char* format, va_list arguments) {
  struct output output = {buffer, capacity, 0};
  for (const char* cursor = format; *cursor != '\0'; ++cursor) {
    if (*cursor != '%') {
      put_character(&output, *cursor);
      continue;
    }
    ++cursor;
    unsigned long_count = 0;
    bool size_modifier = false;
    for (;; ++cursor) {
      if (*cursor == 'l') {
        ++long_count;
      } else if (*cursor == 'z') {
        size_modifier = true;
      } else {
        break;
      }
    }
    bool wide = long_count > 0 || size_modifier;
    switch (*cursor) {
      case 's': {
        const char* text = va_arg(arguments, const char*);
        while (*text != '\0')
          put_character(&output, *text++);
        break;
      }
      case 'c':
        put_character(&output, (char)va_arg(arguments, int));
        break;
      case 'd':
      case 'i': {
        int64_t value = wide ? va_arg(arguments, int64_t) : va_arg(arguments, int);
        uint64_t magnitude = (uint64_t)value;
        if (value < 0) {
          put_character(&output, '-');
          magnitude = 0 - magnitude;
        }
        put_unsigned(&output, magnitude, 10);
        break;
      }
      case 'u':
      case 'x': {
        uint64_t value = wide ? va_arg(arguments, uint64_t) : va_arg(arguments, unsigned);
        put_unsigned(&output, value, *cursor == 'u' ? 10 : 16);
        break;
      }
      case '%':
        put_character(&output, '%');
        break;
      case '\0':
        --cursor; /* a lone '%' at the end: stop at the terminator */
        break;
      default:
        put_character(&output, '?');
        break;
    }
  }
  if (capacity > 0) buffer[output.length] = '\0';
  return output.length;
}

size_t format_to(char* buffer, size_t capacity, const char* format, ...) {
  va_list arguments;
  va_start(arguments, format);
  size_t length = format_text(buffer, capacity, format, arguments);
  va_end(arguments);
  return length;
}
