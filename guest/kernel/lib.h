/* The few C library pieces a freestanding kernel needs. gcc may emit calls to
 * memset/memcpy/memmove/memcmp even with -ffreestanding (GCC manual, "C
 * Dialect Options": a freestanding environment must still provide them). */
#ifndef VMLAB_GUEST_LIB_H
#define VMLAB_GUEST_LIB_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void* memset(void* destination, int value, size_t length);
void* memcpy(void* destination, const void* source, size_t length);
void* memmove(void* destination, const void* source, size_t length);
int memcmp(const void* left, const void* right, size_t length);

size_t string_length_bounded(const char* text, size_t maximum);

/* Compares a text that is not NUL-terminated (a command-line token) with a C string. */
bool text_equals(const char* text, size_t length, const char* expected);

/* printf subset: %s %c %d %u %x %% with the l, ll and z length modifiers.
 * Output beyond the capacity is dropped; the result is always NUL-terminated.
 * Returns the number of characters stored, without the NUL. */
size_t format_text(char* buffer, size_t capacity, const char* format, va_list arguments);
size_t format_to(char* buffer, size_t capacity, const char* format, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* VMLAB_GUEST_LIB_H */
