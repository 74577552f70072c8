// libFuzzer's entry point for a program that has its own main (https://llvm.org/docs/LibFuzzer.html).
// SwiftPM gives every executable one, so the targets call this instead of relying on libFuzzer's main.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
