// The low-level SHA256_CTX interface is deprecated in OpenSSL 3 in favour of EVP, whose state is opaque; it
// is the only one that lets a hash's state be saved, and it stays in OpenSSL 3.
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "resumable_sha256.h"

#include <openssl/sha.h>
#include <string.h>

_Static_assert(sizeof(SHA256_CTX) <= sizeof(modelreg_sha256), "SHA256_CTX fits the opaque state");

static SHA256_CTX *context(modelreg_sha256 *ctx) { return (SHA256_CTX *)ctx->opaque; }

void modelreg_sha256_init(modelreg_sha256 *ctx) {
    memset(ctx, 0, sizeof(*ctx));
    SHA256_Init(context(ctx));
}

void modelreg_sha256_update(modelreg_sha256 *ctx, const void *bytes, size_t count) {
    SHA256_Update(context(ctx), bytes, count);
}

void modelreg_sha256_digest(const modelreg_sha256 *ctx, uint8_t digest[32]) {
    SHA256_CTX copy = *(const SHA256_CTX *)ctx->opaque;
    SHA256_Final(digest, &copy);
}

static void put_be(uint8_t *out, uint64_t value, int width) {
    for (int i = 0; i < width; i++) out[i] = (uint8_t)(value >> (8 * (width - 1 - i)));
}

static uint64_t get_be(const uint8_t *in, int width) {
    uint64_t value = 0;
    for (int i = 0; i < width; i++) value = (value << 8) | in[i];
    return value;
}

size_t modelreg_sha256_export(const modelreg_sha256 *ctx, uint8_t *out) {
    const SHA256_CTX *c = (const SHA256_CTX *)ctx->opaque;
    for (int i = 0; i < 8; i++) put_be(out + 4 * i, c->h[i], 4);
    uint64_t bits = ((uint64_t)c->Nh << 32) | c->Nl;
    put_be(out + 32, bits / 8, 8);
    // OpenSSL keeps the unfinished block as bytes in `data`, `num` of them.
    memcpy(out + 40, (const uint8_t *)c->data, c->num);
    return 40 + c->num;
}

int modelreg_sha256_import(modelreg_sha256 *ctx, const uint8_t *state, size_t count) {
    if (count < 40 || count > MODELREG_SHA256_STATE_MAX) return -1;
    uint64_t length = get_be(state + 32, 8);
    if (length >> 61 != 0 || length % 64 != count - 40) return -1;
    modelreg_sha256 fresh;
    modelreg_sha256_init(&fresh);
    SHA256_CTX *c = context(&fresh);
    for (int i = 0; i < 8; i++) c->h[i] = (SHA_LONG)get_be(state + 4 * i, 4);
    c->Nl = (SHA_LONG)(length * 8);
    c->Nh = (SHA_LONG)((length * 8) >> 32);
    memcpy((uint8_t *)c->data, state + 40, count - 40);
    c->num = (unsigned int)(count - 40);
    *ctx = fresh;
    return 0;
}
