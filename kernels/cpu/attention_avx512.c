/*
 * attention_avx512.c -- causal attention for heads of 64 with AVX-512 register tiles.
 *
 * Why not sgemm: every product in attention has one dimension equal to the head
 * size, so each element of the (T, T) score matrix meets only 64 multiply-adds.
 * OpenBLAS packs its operands before multiplying; for these shapes packing and
 * zeroing the output cost about as much as the arithmetic, and attention ran at a
 * third of the machine's sgemm rate.  Here one kernel, mm_tile, computes a tile
 * of 6 rows x 64 columns in 24 zmm registers straight from the row-major arrays
 * (K and V are transposed once per head into scratch so that their rows are
 * contiguous), and the causal structure is exact to 6 rows: a tile multiplies only
 * the columns its last row can see.
 * Products with a transposed (T, T) operand (dV = P^T dO, dK = dS^T Q) are computed
 * transposed (dV^T = dO^T P), so that the big operand is read along its rows, and
 * stored back through a 64 x 64 tile on the stack.
 *
 * The same maths as ops.c's portable path (test_cpu_ops compares the two and
 * checks these gradients with finite differences).  Invariant shared with the
 * backward pass: row t of att holds the probabilities of columns 0..t and zeros
 * from t+1 to the end of its block of 64 columns (further when its tile of rows
 * reaches into the next block); the same holds for the dS scratch.  Measured on the
 * GPT-2 124M shape (B=4, T=1024, 12 heads, 2 threads): forward 59 -> 42 ms, backward
 * 96 -> 74 ms per layer against the sgemm path.
 */
#include "kernels/cpu/cpu_int.h"

#include <immintrin.h>
#include <math.h>
#include <omp.h>

#define HS   64 /* the head size this file serves */
#define ROWS 6  /* rows per register tile */

/*
 * mm_tile -- C[i][0..ncols) = alpha * sum_{k < kn} a(i, k) * B[k * ldb + 0..ncols)
 * for i < rows (<= ROWS), where a(i, k) = A[i * ai + k * ak]; overwrites C.
 * ncols <= 64; columns past ncols are not written to C, but every row of B must have 64
 * readable floats (the callers pad K^T and V^T to a multiple of 64 columns).
 * 6 x 4 accumulators + 4 rows of B + a broadcast: 29 of the 32 zmm registers.
 */
__attribute__((target("avx512f"))) static void mm_tile(float *C, size_t ldc, int rows, int ncols,
                                                       const float *A, size_t ai, size_t ak,
                                                       const float *B, size_t ldb, int kn,
                                                       float alpha)
{
  __mmask16 m[4];
  for (int v = 0; v < 4; v++) {
    int lo = 16 * v;
    m[v] = ncols >= lo + 16 ? (__mmask16)0xFFFF
                            : (ncols <= lo ? (__mmask16)0 : (__mmask16)((1u << (ncols - lo)) - 1));
  }
  /* rows past `rows` repeat row 0: computed, never stored, always inside A.  The 24
   * accumulators are named one by one: as an array, gcc keeps them on the stack. */
#define ROW_PTR(i) const float *a##i = rows > i ? A + (size_t)i * ai : A
#define ROW_ZERO(i)                                                                                \
  __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = c##i##0, c##i##2 = c##i##0, c##i##3 = c##i##0
#define ROW_FMA(i)                                                                                 \
  do {                                                                                             \
    __m512 x = _mm512_set1_ps(a##i[o]);                                                            \
    c##i##0 = _mm512_fmadd_ps(x, b0, c##i##0), c##i##1 = _mm512_fmadd_ps(x, b1, c##i##1);          \
    c##i##2 = _mm512_fmadd_ps(x, b2, c##i##2), c##i##3 = _mm512_fmadd_ps(x, b3, c##i##3);          \
  } while (0)
#define ROW_STORE(i)                                                                               \
  do {                                                                                             \
    if (rows > i) {                                                                                \
      float *c = C + (size_t)i * ldc;                                                              \
      if (m[0]) _mm512_mask_storeu_ps(c, m[0], _mm512_mul_ps(s, c##i##0));                         \
      if (m[1]) _mm512_mask_storeu_ps(c + 16, m[1], _mm512_mul_ps(s, c##i##1));                    \
      if (m[2]) _mm512_mask_storeu_ps(c + 32, m[2], _mm512_mul_ps(s, c##i##2));                    \
      if (m[3]) _mm512_mask_storeu_ps(c + 48, m[3], _mm512_mul_ps(s, c##i##3));                    \
    }                                                                                              \
  } while (0)
  ROW_PTR(0);
  ROW_PTR(1);
  ROW_PTR(2);
  ROW_PTR(3);
  ROW_PTR(4);
  ROW_PTR(5);
  ROW_ZERO(0);
  ROW_ZERO(1);
  ROW_ZERO(2);
  ROW_ZERO(3);
  ROW_ZERO(4);
  ROW_ZERO(5);
  for (int k = 0; k < kn; k++) {
    const float *b = B + (size_t)k * ldb;
    __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
    __m512 b2 = _mm512_loadu_ps(b + 32), b3 = _mm512_loadu_ps(b + 48);
    size_t o = (size_t)k * ak;
    ROW_FMA(0);
    ROW_FMA(1);
    ROW_FMA(2);
    ROW_FMA(3);
    ROW_FMA(4);
    ROW_FMA(5);
  }
  __m512 s = _mm512_set1_ps(alpha);
  ROW_STORE(0);
  ROW_STORE(1);
  ROW_STORE(2);
  ROW_STORE(3);
  ROW_STORE(4);
  ROW_STORE(5);
#undef ROW_PTR
#undef ROW_ZERO
#undef ROW_FMA
#undef ROW_STORE
}

/* transpose -- dst (HS, T) of row stride ldd = src (T, HS) of row stride lds */
static void transpose(float *dst, size_t ldd, const float *src, size_t lds, int T)
{
  for (int t0 = 0; t0 < T; t0 += 16) { /* 16 rows of src at a time: they stay in L1 */
    int t1 = t0 + 16 < T ? t0 + 16 : T;
    for (int d = 0; d < HS; d++)
      for (int t = t0; t < t1; t++)
        dst[(size_t)d * ldd + t] = src[(size_t)t * lds + d];
  }
}

/* Per head, scratch past the (T, T) part holds HS rows of ldt(T) floats: K or V
 * transposed, zero from column T to a multiple of 64 (mm_tile reads 64 at a time), and
 * 16 more so that the rows do not all fall in one L1 set. */
static size_t ldt_of(int T)
{
  return (size_t)(T + 63) / 64 * 64 + 16;
}

static void transpose_padded(float *dst, size_t ldd, const float *src, size_t lds, int T)
{
  transpose(dst, ldd, src, lds, T);
  for (int d = 0; d < HS; d++)
    for (size_t t = (size_t)T; t < ldd; t++)
      dst[(size_t)d * ldd + t] = 0;
}

static int min_int(int a, int b)
{
  return a < b ? a : b;
}

/* zero_end -- where row t's zeros end: the end of its block of 64 columns, or of its
 * tile of rows (tile_end) when that tile reaches into the next block */
static int zero_end(int t, int tile_end, int T)
{
  int e = (t / 64 + 1) * 64;
  return min_int(T, tile_end > e ? tile_end : e);
}

/*
 * transposed_product -- D[j][0..HS) = sum_{t >= j} X[t][j] Y[t][0..HS) for every j < T,
 * with X (T, T) causal (zero above the diagonal within each block of 64), Y (T, HS) of
 * row stride ldy, D of row stride ldd.  Computed as D^T = Y^T X, 64 columns of X at a
 * time; those columns are first copied to strip (T x 64 floats) so that the 11 passes over
 * them read contiguous memory (rows of X lie T floats apart: with T = 1024 every row falls
 * in the same L1 set).
 */
static void transposed_product(float *D, size_t ldd, const float *X, const float *Y, size_t ldy,
                               int T, float *strip)
{
  float tile[HS * 64]; /* (d, j) */
  for (int j0 = 0; j0 < T; j0 += 64) {
    int ncols = min_int(64, T - j0);
    for (int t = j0; t < T; t++) { /* a plain loop: memcpy inlines as a slow "rep movs" */
      float *dst = strip + (size_t)(t - j0) * 64;
      const float *src = X + (size_t)t * T + j0;
#pragma omp simd
      for (int c = 0; c < ncols; c++)
        dst[c] = src[c];
    }
    for (int d0 = 0; d0 < HS; d0 += ROWS)
      mm_tile(tile + (size_t)d0 * 64, 64, min_int(ROWS, HS - d0), ncols, Y + (size_t)j0 * ldy + d0,
              1, ldy, strip, 64, T - j0, 1.0f);
    for (int j = 0; j < ncols; j++)
      for (int d = 0; d < HS; d++)
        D[(size_t)(j0 + j) * ldd + d] = tile[(size_t)d * 64 + j];
  }
}

void kernels__attention_forward_avx512(float *out, float *att, float *scratch, const float *qkv,
                                       int B, int T, int C, int NH)
{
  float scale = 1.0f / sqrtf((float)HS);
  int C3 = 3 * C;
  size_t ldt = ldt_of(T);
  float *kt_all = scratch + (size_t)B * NH * T * T; /* (B, NH, HS, ldt) */
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < NH; h++) {
      const float *Q = qkv + (size_t)b * T * C3 + (size_t)h * HS;
      const float *K = Q + C, *V = Q + 2 * C;
      float *P = att + ((size_t)b * NH + h) * T * T;
      float *O = out + (size_t)b * T * C + (size_t)h * HS;
      float *Kt = kt_all + ((size_t)b * NH + h) * HS * ldt;
      transpose_padded(Kt, ldt, K, (size_t)C3, T);
      for (int i = 0; i < T; i += ROWS) {
        int rows = min_int(ROWS, T - i), end = i + rows; /* the tile sees columns < end */
        for (int c0 = 0; c0 < end; c0 += 64)             /* S = Q K^T, scaled */
          mm_tile(P + (size_t)i * T + c0, (size_t)T, rows, min_int(64, end - c0),
                  Q + (size_t)i * C3, (size_t)C3, 1, Kt + c0, ldt, HS, scale);
        for (int t = i; t < end; t++)
          kernels__softmax_causal_row(P + (size_t)t * T, t, zero_end(t, end, T));
        /* O = P V over the visible columns */
        mm_tile(O + (size_t)i * C, (size_t)C, rows, HS, P + (size_t)i * T, (size_t)T, 1, V,
                (size_t)C3, end, 1.0f);
      }
    }
  }
}

void kernels__attention_backward_avx512(float *dqkv, float *scratch, const float *dout,
                                        const float *qkv, const float *att, int B, int T, int C,
                                        int NH)
{
  float scale = 1.0f / sqrtf((float)HS);
  int C3 = 3 * C;
  size_t ldt = ldt_of(T);
  float *vt_all = scratch + (size_t)B * NH * T * T; /* (B, NH, HS, ldt) */
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < NH; h++) {
      const float *Q = qkv + (size_t)b * T * C3 + (size_t)h * HS;
      const float *K = Q + C, *V = Q + 2 * C;
      float *dQ = dqkv + (size_t)b * T * C3 + (size_t)h * HS;
      float *dK = dQ + C, *dV = dQ + 2 * C;
      const float *P = att + ((size_t)b * NH + h) * T * T;
      const float *dO = dout + (size_t)b * T * C + (size_t)h * HS;
      float *dS = scratch + ((size_t)b * NH + h) * T * T;
      float *Vt = vt_all + ((size_t)b * NH + h) * HS * ldt;        /* first the strip, then V^T */
      transposed_product(dV, (size_t)C3, P, dO, (size_t)C, T, Vt); /* dV = P^T dO */
      transpose_padded(Vt, ldt, V, (size_t)C3, T);
      for (int i = 0; i < T; i += ROWS) {
        int rows = min_int(ROWS, T - i), end = i + rows;
        for (int c0 = 0; c0 < end; c0 += 64) /* dP = dO V^T */
          mm_tile(dS + (size_t)i * T + c0, (size_t)T, rows, min_int(64, end - c0),
                  dO + (size_t)i * C, (size_t)C, 1, Vt + c0, ldt, HS, 1.0f);
        for (int t = i; t < end; t++) /* through the softmax */
          kernels__softmax_causal_row_backward(dS + (size_t)t * T, P + (size_t)t * T, t,
                                               zero_end(t, end, T), scale);
        /* dQ = dS K */
        mm_tile(dQ + (size_t)i * C3, (size_t)C3, rows, HS, dS + (size_t)i * T, (size_t)T, 1, K,
                (size_t)C3, end, 1.0f);
      }
      transposed_product(dK, (size_t)C3, dS, Q, (size_t)C3, T, Vt); /* dK = dS^T Q */
    }
  }
}

bool kernels__attention_avx512_usable(int C, int NH)
{
  __builtin_cpu_init();
  return NH > 0 && C % NH == 0 && C / NH == HS && __builtin_cpu_supports("avx512f");
}
