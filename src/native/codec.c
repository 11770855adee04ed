/*
 * u2cm page-batch codec: the LZ4 block format (https://github.com/lz4/lz4/blob/dev/doc/lz4_Block_format.md),
 * implemented here from the format description so the shim stays one self-contained library
 * (no liblz4 to link or ship, same code on x86_64 and aarch64). Built into the same .so as
 * shim.c (src/native/build.ts compiles both as one translation unit).
 *
 *  - u2cm_lz4_bound(n): the largest compressed size of n input bytes.
 *  - u2cm_lz4_compress(src, n, dst, cap): greedy single-pass compressor with a 4 KiB-entry hash
 *    table of 4-byte sequences; returns the compressed size or -1 when cap is too small.
 *  - u2cm_lz4_decompress(src, n, dst, cap): bounds-checked decoder; returns the decoded size, or
 *    -1 for malformed input (never reads or writes outside the buffers).
 */
#include <stdint.h>
#include <string.h>

#define U2CM_LZ4_HASH_LOG 12
#define U2CM_LZ4_MIN_MATCH 4
#define U2CM_LZ4_LAST_LITERALS 5
#define U2CM_LZ4_MF_LIMIT 12

static uint32_t u2cm_lz4_read32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

static uint32_t u2cm_lz4_hash(uint32_t v) {
  return (v * 2654435761u) >> (32 - U2CM_LZ4_HASH_LOG);
}

/* Largest compressed size of n bytes (incompressible input plus length bytes and a token). */
int64_t u2cm_lz4_bound(uint32_t n) { return (int64_t)n + n / 255 + 16; }

/* Write a length extension (value >= 15 already encoded as 15 in the token). */
static uint8_t *u2cm_lz4_write_len(uint8_t *op, const uint8_t *oend, uint32_t len) {
  while (len >= 255) {
    if (op >= oend) return NULL;
    *op++ = 255;
    len -= 255;
  }
  if (op >= oend) return NULL;
  *op++ = (uint8_t)len;
  return op;
}

/* Emit one sequence: literals [anchor, anchor+lit) then, when mlen > 0, a match. */
static uint8_t *u2cm_lz4_emit(uint8_t *op, const uint8_t *oend, const uint8_t *anchor,
                              uint32_t lit, uint32_t offset, uint32_t mlen) {
  if (op >= oend) return NULL;
  uint8_t *token = op++;
  uint32_t mcode = mlen ? mlen - U2CM_LZ4_MIN_MATCH : 0;
  *token = (uint8_t)(((lit >= 15 ? 15 : lit) << 4) | (mcode >= 15 ? 15 : mcode));
  if (lit >= 15 && !(op = u2cm_lz4_write_len(op, oend, lit - 15))) return NULL;
  if ((uint64_t)(oend - op) < lit) return NULL;
  memcpy(op, anchor, lit);
  op += lit;
  if (!mlen) return op;
  if (oend - op < 2) return NULL;
  *op++ = (uint8_t)(offset & 0xff);
  *op++ = (uint8_t)(offset >> 8);
  if (mcode >= 15 && !(op = u2cm_lz4_write_len(op, oend, mcode - 15))) return NULL;
  return op;
}

int64_t u2cm_lz4_compress(const uint8_t *src, uint32_t n, uint8_t *dst, uint32_t cap) {
  uint32_t table[1 << U2CM_LZ4_HASH_LOG];
  memset(table, 0, sizeof table);
  const uint8_t *ip = src, *anchor = src, *end = src + n;
  uint8_t *op = dst;
  const uint8_t *oend = dst + cap;
  if (n > U2CM_LZ4_MF_LIMIT) {
    const uint8_t *mflimit = end - U2CM_LZ4_MF_LIMIT;
    const uint8_t *matchlimit = end - U2CM_LZ4_LAST_LITERALS;
    while (ip < mflimit) {
      uint32_t seq = u2cm_lz4_read32(ip);
      uint32_t h = u2cm_lz4_hash(seq);
      const uint8_t *ref = src + table[h];
      table[h] = (uint32_t)(ip - src);
      if (ref < ip && ip - ref <= 65535 && u2cm_lz4_read32(ref) == seq) {
        const uint8_t *p = ip + U2CM_LZ4_MIN_MATCH, *m = ref + U2CM_LZ4_MIN_MATCH;
        while (p < matchlimit && *p == *m) {
          p++;
          m++;
        }
        op = u2cm_lz4_emit(op, oend, anchor, (uint32_t)(ip - anchor), (uint32_t)(ip - ref),
                           (uint32_t)(p - ip));
        if (!op) return -1;
        ip = anchor = p;
      } else {
        ip++;
      }
    }
  }
  op = u2cm_lz4_emit(op, oend, anchor, (uint32_t)(end - anchor), 0, 0);
  return op ? (int64_t)(op - dst) : -1;
}

int64_t u2cm_lz4_decompress(const uint8_t *src, uint32_t n, uint8_t *dst, uint32_t cap) {
  const uint8_t *ip = src, *iend = src + n;
  uint8_t *op = dst, *oend = dst + cap;
  while (ip < iend) {
    uint8_t token = *ip++;
    uint64_t lit = token >> 4;
    if (lit == 15) {
      uint8_t b;
      do {
        if (ip >= iend) return -1;
        b = *ip++;
        lit += b;
      } while (b == 255 && lit < ((uint64_t)1 << 32));
    }
    if (lit > (uint64_t)(iend - ip) || lit > (uint64_t)(oend - op)) return -1;
    memcpy(op, ip, lit);
    ip += lit;
    op += lit;
    if (ip == iend) break; /* the last sequence has literals only */
    if (iend - ip < 2) return -1;
    uint32_t offset = (uint32_t)ip[0] | ((uint32_t)ip[1] << 8);
    ip += 2;
    if (offset == 0 || offset > (uint64_t)(op - dst)) return -1;
    uint64_t mlen = token & 15;
    if (mlen == 15) {
      uint8_t b;
      do {
        if (ip >= iend) return -1;
        b = *ip++;
        mlen += b;
      } while (b == 255 && mlen < ((uint64_t)1 << 32));
    }
    mlen += U2CM_LZ4_MIN_MATCH;
    if (mlen > (uint64_t)(oend - op)) return -1;
    const uint8_t *m = op - offset;
    for (uint64_t i = 0; i < mlen; i++) op[i] = m[i]; /* overlapping copies repeat the run */
    op += mlen;
  }
  return (int64_t)(op - dst);
}
