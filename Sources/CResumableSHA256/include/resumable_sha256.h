#ifndef MODELREG_RESUMABLE_SHA256_H
#define MODELREG_RESUMABLE_SHA256_H

#include <stddef.h>
#include <stdint.h>

/// SHA-256 (OpenSSL's libcrypto, with its CPU-specific code) whose running state can be written out and read
/// back: an upload's hash survives the process that began it. The state is this header's own format, not
/// libcrypto's memory layout: the 8 chaining words (big-endian), the message length in bytes (64-bit
/// big-endian), then the bytes of the unfinished block (length mod 64 of them).
typedef struct {
    uint64_t opaque[16];
} modelreg_sha256;

enum { MODELREG_SHA256_STATE_MAX = 32 + 8 + 63 };

void modelreg_sha256_init(modelreg_sha256 *ctx);
void modelreg_sha256_update(modelreg_sha256 *ctx, const void *bytes, size_t count);
/// The digest of everything seen so far; `ctx` is left as it was and can go on.
void modelreg_sha256_digest(const modelreg_sha256 *ctx, uint8_t digest[32]);
/// Writes the state to `out` (room for MODELREG_SHA256_STATE_MAX bytes); returns how many bytes it wrote.
size_t modelreg_sha256_export(const modelreg_sha256 *ctx, uint8_t *out);
/// Reads a state written by modelreg_sha256_export; returns 0, or -1 (and leaves `ctx` alone) when `count`
/// bytes are not such a state.
int modelreg_sha256_import(modelreg_sha256 *ctx, const uint8_t *state, size_t count);

#endif
