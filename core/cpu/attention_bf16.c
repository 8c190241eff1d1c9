/* attention_bf16.c — one attention head with bf16 operands, as FlashAttention computes it for the
 * reference's bf16 forward: S = scale · bf16(q) · bf16(k)ᵀ with fp32 accumulation, the softmax in
 * fp32, then O = bf16(P) · bf16(v) with fp32 accumulation.
 *
 * Both products run on AVX-512 BF16 dot products (VDPBF16PS: 16 fp32 lanes, each adding a pair of
 * bf16 products). The right-hand operand is packed so that a lane's pair runs along the sum:
 * k as (HD/2, T) pairs over the head dimension, v as (T/2, HD) pairs over the keys; the left-hand
 * pair is broadcast (q's row pairs, P's row pairs, which bf16 rows already are). The packed
 * operands live on the stack (128 KB at the limits T <= HRM_ATT_BF16_MAX_T, HD <=
 * HRM_ATT_BF16_MAX_HD, HD a multiple of 32); hrm_cpu_head_bf16 returns 0 for anything else, or on
 * a CPU without AVX-512 BF16, and the caller takes the fp32 path. Four query rows at a time go
 * through scores, softmax and the product with v, so an untaped call (a NULL) never writes the
 * T x T probabilities, as a flash kernel; a taped one writes them for the backward.
 */
#include <stdint.h>
#include <string.h>

#include "ops.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))
enum { PAIRS_MAX = HRM_ATT_BF16_MAX_HD / 2, KEYS_MAX = (HRM_ATT_BF16_MAX_T + 31) / 32 * 32 };

/* dst (n) = bf16(src (n)), n a multiple of 32 (zero-padded by the caller beyond the data). */
BF16_TARGET static void cvt_row(uint16_t *dst, const float *src, int n, int valid) {
   for (int j = 0; j < n; j += 32) {
      const __mmask16 m0 = j >= valid ? 0 : valid - j >= 16 ? 0xffff : (__mmask16)((1u << (valid - j)) - 1);
      const int j1 = j + 16;
      const __mmask16 m1 = j1 >= valid ? 0 : valid - j1 >= 16 ? 0xffff
                                                              : (__mmask16)((1u << (valid - j1)) - 1);
      const __m512 lo = _mm512_maskz_loadu_ps(m0, src + j), hi = _mm512_maskz_loadu_ps(m1, src + j1);
      _mm512_storeu_si512(dst + j, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
   }
}

/* k_pairs[p][j] = (k[j][2p], k[j][2p+1]) in bf16 for j < T, zero up to Tk. */
BF16_TARGET static void pack_k(uint32_t *k_pairs, const float *k, int ld, int T, int Tk, int HD) {
   const int P = HD / 2;
   for (int j = 0; j < Tk; j++) {
      uint32_t w[PAIRS_MAX];
      if (j < T) cvt_row((uint16_t *)w, k + (int64_t)j * ld, HD, HD);
      else memset(w, 0, sizeof(uint32_t) * (size_t)P);
      for (int p = 0; p < P; p++) k_pairs[p * Tk + j] = w[p];
   }
}

/* v_pairs[jp][d] = (v[2jp][d], v[2jp+1][d]) in bf16, rows past T zero. */
BF16_TARGET static void pack_v(uint32_t *v_pairs, const float *v, int ld, int T, int Tp, int HD) {
   __m512i idx_lo, idx_hi;  // interleave the low halves (d, 16 + d) of cvtne2ps's two inputs
   {
      uint16_t a[32], b[32];
      for (int d = 0; d < 16; d++) {
         a[2 * d] = (uint16_t)d, a[2 * d + 1] = (uint16_t)(32 + d);
         b[2 * d] = (uint16_t)(16 + d), b[2 * d + 1] = (uint16_t)(48 + d);
      }
      idx_lo = _mm512_loadu_si512(a), idx_hi = _mm512_loadu_si512(b);
   }
   const __m512 zero = _mm512_setzero_ps();
   for (int jp = 0; jp < Tp / 2; jp++) {
      const int j0 = 2 * jp, j1 = 2 * jp + 1;
      const float *r0 = v + (int64_t)j0 * ld, *r1 = v + (int64_t)j1 * ld;
      uint32_t *dst = v_pairs + (int64_t)jp * HD;
      for (int d = 0; d < HD; d += 32) {
         const __m512 a0 = j0 < T ? _mm512_loadu_ps(r0 + d) : zero;  // row 2jp, d .. d+15
         const __m512 a1 = j0 < T ? _mm512_loadu_ps(r0 + d + 16) : zero;
         const __m512 b0 = j1 < T ? _mm512_loadu_ps(r1 + d) : zero;  // row 2jp+1
         const __m512 b1 = j1 < T ? _mm512_loadu_ps(r1 + d + 16) : zero;
         const __m512i x = (__m512i)_mm512_cvtne2ps_pbh(a1, a0);  // row 2jp: d .. d+31
         const __m512i y = (__m512i)_mm512_cvtne2ps_pbh(b1, b0);  // row 2jp+1
         _mm512_storeu_si512(dst + d, _mm512_permutex2var_epi16(x, idx_lo, y));
         _mm512_storeu_si512(dst + d + 16, _mm512_permutex2var_epi16(x, idx_hi, y));
      }
   }
}

/* a rows (R of them, stride T) = scale · q·kᵀ over key blocks [j0, j0 + 16·NB) (clipped to T),
 * from the bf16 q rows in row16 (stride HD): R x NB accumulators stay in registers. */
#define S_BLOCK(R, NB)                                                                            \
   BF16_TARGET static void scores_##R##_##NB(float *a, const uint32_t *k_pairs,                   \
                                             const uint16_t *row16, int T, int Tk, int j0, int P, \
                                             int HD, float scale) {                               \
      __m512 acc[R][NB];                                                                          \
      for (int r = 0; r < R; r++)                                                                 \
         for (int c = 0; c < NB; c++) acc[r][c] = _mm512_setzero_ps();                           \
      for (int p = 0; p < P; p++) {                                                               \
         const uint32_t *kp = k_pairs + (int64_t)p * Tk + j0;                                     \
         __m512bh kv[NB];                                                                         \
         for (int c = 0; c < NB; c++) kv[c] = (__m512bh)_mm512_loadu_si512(kp + 16 * c);          \
         for (int r = 0; r < R; r++) {                                                            \
            uint32_t qp;                                                                          \
            memcpy(&qp, row16 + (int64_t)r * HD + 2 * p, 4);                                      \
            const __m512bh qb = (__m512bh)_mm512_set1_epi32((int)qp);                             \
            for (int c = 0; c < NB; c++) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], qb, kv[c]);      \
         }                                                                                        \
      }                                                                                           \
      const __m512 s = _mm512_set1_ps(scale);                                                     \
      for (int r = 0; r < R; r++)                                                                 \
         for (int c = 0; c < NB; c++) {                                                           \
            const int j = j0 + 16 * c;                                                            \
            const __mmask16 m = T - j >= 16 ? 0xffff : (__mmask16)((1u << (T - j)) - 1);         \
            _mm512_mask_storeu_ps(a + (int64_t)r * T + j, m, _mm512_mul_ps(acc[r][c], s));        \
         }                                                                                        \
   }
#define S_BLOCKS(R) S_BLOCK(R, 1) S_BLOCK(R, 2) S_BLOCK(R, 3) S_BLOCK(R, 4) S_BLOCK(R, 5) S_BLOCK(R, 6)
S_BLOCKS(4)
S_BLOCKS(1)
typedef void (*scores_fn)(float *, const uint32_t *, const uint16_t *, int, int, int, int, int, float);
static const scores_fn scores4[7] = {NULL, scores_4_1, scores_4_2, scores_4_3, scores_4_4, scores_4_5, scores_4_6};
static const scores_fn scores1[7] = {NULL, scores_1_1, scores_1_2, scores_1_3, scores_1_4, scores_1_5, scores_1_6};

/* R rows of a (stride T) = scale · q·kᵀ, the keys in groups of up to 6 blocks of 16. */
static void scores(int R, float *a, const uint32_t *k_pairs, const uint16_t *row16, int T, int Tk,
                   int P, int HD, float scale) {
   for (int j0 = 0; j0 < Tk; j0 += 96) {
      const int nb = (Tk - j0) / 16 < 6 ? (Tk - j0) / 16 : 6;
      (R == 4 ? scores4 : scores1)[nb](a, k_pairs, row16, T, Tk, j0, P, HD, scale);
   }
}

/* o rows (stride ldo) = bf16(P rows in row16, stride Tp) · v, for R rows and HD <= 64 · HB. */
#define O_BLOCK(R)                                                                                \
   BF16_TARGET static void values_##R(float *o, const uint32_t *v_pairs, const uint16_t *row16,   \
                                      int ldo, int T, int Tp, int HD) {                           \
      for (int db = 0; db < HD; db += 64) {                                                       \
         const int nb = (HD - db) / 16 < 4 ? (HD - db) / 16 : 4;                                  \
         __m512 acc[R][4];                                                                        \
         for (int r = 0; r < R; r++)                                                              \
            for (int c = 0; c < 4; c++) acc[r][c] = _mm512_setzero_ps();                          \
         for (int jp = 0; jp < (T + 1) / 2; jp++) {                                               \
            const uint32_t *vp = v_pairs + (int64_t)jp * HD + db;                                 \
            __m512bh vv[4];                                                                       \
            for (int c = 0; c < 4; c++)                                                           \
               vv[c] = (__m512bh)(c < nb ? _mm512_loadu_si512(vp + 16 * c) : _mm512_setzero_si512()); \
            for (int r = 0; r < R; r++) {                                                         \
               uint32_t pp;                                                                       \
               memcpy(&pp, row16 + (int64_t)r * Tp + 2 * jp, 4);                                  \
               const __m512bh pb = (__m512bh)_mm512_set1_epi32((int)pp);                          \
               for (int c = 0; c < 4; c++) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], pb, vv[c]);    \
            }                                                                                     \
         }                                                                                        \
         for (int r = 0; r < R; r++)                                                              \
            for (int c = 0; c < nb; c++)                                                          \
               _mm512_storeu_ps(o + (int64_t)r * ldo + db + 16 * c, acc[r][c]);                   \
      }                                                                                           \
   }
O_BLOCK(4)
O_BLOCK(1)

BF16_TARGET static void head_bf16(float *o, float *a, const float *q, const float *k,
                                  const float *v, int T, int HD, int D, float scale,
                                  void (*softmax)(float *a, int T, int rows)) {
   const int Tk = (T + 15) / 16 * 16, Tp = (T + 31) / 32 * 32, P = HD / 2;
   uint32_t k_pairs[PAIRS_MAX * KEYS_MAX];                    // (HD/2, Tp): k pairs over d
   uint32_t v_pairs[KEYS_MAX / 2 * HRM_ATT_BF16_MAX_HD];      // (Tp/2, HD): v pairs over keys
   uint16_t row16[4 * (KEYS_MAX > HRM_ATT_BF16_MAX_HD ? KEYS_MAX : HRM_ATT_BF16_MAX_HD)];
   float rows[4 * KEYS_MAX];  // (4, T) the block's probabilities when a is NULL
   pack_k(k_pairs, k, 3 * D, T, Tk, HD);
   pack_v(v_pairs, v, 3 * D, T, Tp, HD);
   /* blocks of four query rows (then single rows): scores against every key, softmax, and the
    * bf16 P rows (stride Tp, zero past T) times v, while the block's rows are in L1 */
   for (int i = 0; i < T;) {
      const int R = i + 4 <= T ? 4 : 1;
      float *ai = a ? a + (int64_t)i * T : rows;
      for (int r = 0; r < R; r++) cvt_row(row16 + r * HD, q + (int64_t)(i + r) * 3 * D, HD, HD);
      scores(R, ai, k_pairs, row16, T, Tk, P, HD, scale);
      softmax(ai, T, R);
      for (int r = 0; r < R; r++) cvt_row(row16 + r * Tp, ai + (int64_t)r * T, Tp, T);
      (R == 4 ? values_4 : values_1)(o + (int64_t)i * D, v_pairs, row16, D, T, Tp, HD);
      i += R;
   }
}

int hrm_cpu_head_bf16(float *o, float *a, const float *q, const float *k, const float *v, int T,
                      int HD, int D, float scale, void (*softmax)(float *a, int T, int rows)) {
   static int supported = -1;
   if (supported < 0) supported = __builtin_cpu_supports("avx512bf16") ? 1 : 0;
   if (!supported || T > HRM_ATT_BF16_MAX_T || HD > HRM_ATT_BF16_MAX_HD || HD % 32 != 0)
      return 0;
   head_bf16(o, a, q, k, v, T, HD, D, scale, softmax);
   return 1;
}

#else
int hrm_cpu_head_bf16(float *o, float *a, const float *q, const float *k, const float *v, int T,
                      int HD, int D, float scale, void (*softmax)(float *a, int T, int rows)) {
   (void)o, (void)a, (void)q, (void)k, (void)v, (void)T, (void)HD, (void)D, (void)scale;
   (void)softmax;
   return 0;
}
#endif
