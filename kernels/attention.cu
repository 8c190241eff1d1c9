/* attention.cu — non-causal softmax attention over the fused qkv buffer, forward and backward.
 *
 * Layout as core/cpu/attention.c: qkv (B, T, 3D) = [Q | K | V] head-major, out (B, T, D),
 * att (B, NH, T, T) keeps the probabilities for the backward, scale 1/√HD, no mask. Any T;
 * HD <= 128. A block owns 32 query rows (8 warps × 4 rows) of one (b, h) and streams 32-key
 * tiles of K, V through shared memory; lane j of a warp owns key j of the tile. The forward
 * writes raw scores to att while keeping an online max/sum per row, then normalises them in
 * the output pass. The backward is two kernels: per query rows (dP, dS, dQ) and per key
 * columns (dV, dK). fp32 throughout; not a flash kernel (att is materialised, as the CPU does).
 */
#include <math.h>

#include "common.cuh"

#define QROWS 32    // query rows per block
#define KTILE 32    // keys per shared tile (one per lane)
#define RPW 4       // rows per warp (8 warps)
#define DPL 4       // output dims per lane (HD <= 128)
#define HD_MAX 128

static size_t rows_smem(int HD) {  // q tile (QROWS, HD) + kv tile (KTILE, HD + 1)
   return sizeof(float) * ((size_t)QROWS * HD + (size_t)KTILE * (HD + 1));
}

/* Loads rows [r0, r0 + n) of a (T, HD) matrix with row stride `stride` into dst (n, ld),
 * zero past T. */
static __device__ __forceinline__ void load_tile(float *dst, int ld, const float *src,
                                                 int64_t stride, int r0, int n, int T, int HD) {
   for (int idx = threadIdx.x; idx < n * HD; idx += blockDim.x) {
      const int r = idx / HD, d = idx % HD, i = r0 + r;
      dst[r * ld + d] = i < T ? src[(int64_t)i * stride + d] : 0.0f;
   }
}

// grid (B·NH, ceil(T / QROWS)), block 256
static __global__ void attention_forward_kernel1(float *out, float *att, const float *qkv, int T,
                                                 int NH, int HD, float scale) {
   extern __shared__ float smem[];
   float *q_s = smem;                  // (QROWS, HD)
   float *kv_s = smem + QROWS * HD;    // (KTILE, HD + 1)
   const int D = NH * HD, ld = HD + 1;
   const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
   const int i0 = blockIdx.y * QROWS;
   const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
   const float *q = qkv + (int64_t)b * T * 3 * D + (int64_t)h * HD;  // (T, HD) stride 3D
   const float *k = q + D;
   const float *v = q + 2 * D;
   float *a = att + (int64_t)bh * T * T;                             // (T, T)
   load_tile(q_s, HD, q, 3 * D, i0, QROWS, T, HD);

   /* pass 1: raw scores into att, online max / sum per (row, lane) */
   float m[RPW], l[RPW];
#pragma unroll
   for (int r = 0; r < RPW; r++) {
      m[r] = -INFINITY;
      l[r] = 0.0f;
   }
   for (int j0 = 0; j0 < T; j0 += KTILE) {
      __syncthreads();
      load_tile(kv_s, ld, k, 3 * D, j0, KTILE, T, HD);
      __syncthreads();
      float s[RPW] = {0.0f, 0.0f, 0.0f, 0.0f};
      for (int d = 0; d < HD; d++) {
         const float kd = kv_s[lane * ld + d];
#pragma unroll
         for (int r = 0; r < RPW; r++) s[r] += q_s[(warp * RPW + r) * HD + d] * kd;
      }
      const int j = j0 + lane;
      if (j < T) {
#pragma unroll
         for (int r = 0; r < RPW; r++) {
            const int i = i0 + warp * RPW + r;
            if (i >= T) continue;
            const float sc = s[r] * scale;
            a[(int64_t)i * T + j] = sc;
            if (sc > m[r]) {
               l[r] = l[r] * expf(m[r] - sc) + 1.0f;
               m[r] = sc;
            } else {
               l[r] += expf(sc - m[r]);
            }
         }
      }
   }
   float M[RPW], Linv[RPW];
#pragma unroll
   for (int r = 0; r < RPW; r++) {
      M[r] = warp_max(m[r]);
      const float part = m[r] == -INFINITY ? 0.0f : l[r] * expf(m[r] - M[r]);
      const float L = warp_sum(part);
      Linv[r] = L > 0.0f ? 1.0f / L : 0.0f;
   }

   /* pass 2: probabilities (written back to att) times V */
   float acc[RPW][DPL];
#pragma unroll
   for (int r = 0; r < RPW; r++)
#pragma unroll
      for (int c = 0; c < DPL; c++) acc[r][c] = 0.0f;
   for (int j0 = 0; j0 < T; j0 += KTILE) {
      __syncthreads();
      load_tile(kv_s, ld, v, 3 * D, j0, KTILE, T, HD);
      __syncthreads();
      const int j = j0 + lane;
      float p[RPW];
#pragma unroll
      for (int r = 0; r < RPW; r++) {
         const int i = i0 + warp * RPW + r;
         p[r] = 0.0f;
         if (i < T && j < T) {
            p[r] = expf(a[(int64_t)i * T + j] - M[r]) * Linv[r];
            a[(int64_t)i * T + j] = p[r];
         }
      }
      const int jn = T - j0 < KTILE ? T - j0 : KTILE;
      for (int jj = 0; jj < jn; jj++) {
#pragma unroll
         for (int r = 0; r < RPW; r++) {
            const float pj = __shfl_sync(0xffffffffu, p[r], jj);
#pragma unroll
            for (int c = 0; c < DPL; c++) {
               const int d = lane + 32 * c;
               if (d < HD) acc[r][c] += pj * kv_s[jj * ld + d];
            }
         }
      }
   }
#pragma unroll
   for (int r = 0; r < RPW; r++) {
      const int i = i0 + warp * RPW + r;
      if (i >= T) continue;
      float *o = out + ((int64_t)b * T + i) * D + (int64_t)h * HD;
#pragma unroll
      for (int c = 0; c < DPL; c++) {
         const int d = lane + 32 * c;
         if (d < HD) o[d] = acc[r][c];
      }
   }
}

// rows: dP = dO·Vᵀ, dS = P ⊙ (dP − Σ_j P dP) into datt, dQ = scale · dS · K
static __global__ void attention_backward_kernel1(float *dqkv, float *datt, const float *dout,
                                                  const float *qkv, const float *att, int T,
                                                  int NH, int HD, float scale) {
   extern __shared__ float smem[];
   float *o_s = smem;                  // (QROWS, HD) dO rows
   float *kv_s = smem + QROWS * HD;    // (KTILE, HD + 1)
   const int D = NH * HD, ld = HD + 1;
   const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
   const int i0 = blockIdx.y * QROWS;
   const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
   const float *q = qkv + (int64_t)b * T * 3 * D + (int64_t)h * HD;
   const float *k = q + D;
   const float *v = q + 2 * D;
   const float *dO = dout + (int64_t)b * T * D + (int64_t)h * HD;  // (T, HD) stride D
   float *dq = dqkv + (int64_t)b * T * 3 * D + (int64_t)h * HD;    // (T, HD) stride 3D
   const float *pa = att + (int64_t)bh * T * T;
   float *da = datt + (int64_t)bh * T * T;
   load_tile(o_s, HD, dO, D, i0, QROWS, T, HD);

   float dsum[RPW] = {0.0f, 0.0f, 0.0f, 0.0f};
   for (int j0 = 0; j0 < T; j0 += KTILE) {
      __syncthreads();
      load_tile(kv_s, ld, v, 3 * D, j0, KTILE, T, HD);
      __syncthreads();
      float s[RPW] = {0.0f, 0.0f, 0.0f, 0.0f};
      for (int d = 0; d < HD; d++) {
         const float vd = kv_s[lane * ld + d];
#pragma unroll
         for (int r = 0; r < RPW; r++) s[r] += o_s[(warp * RPW + r) * HD + d] * vd;
      }
      const int j = j0 + lane;
      if (j < T) {
#pragma unroll
         for (int r = 0; r < RPW; r++) {
            const int i = i0 + warp * RPW + r;
            if (i >= T) continue;
            da[(int64_t)i * T + j] = s[r];
            dsum[r] += pa[(int64_t)i * T + j] * s[r];
         }
      }
   }
#pragma unroll
   for (int r = 0; r < RPW; r++) dsum[r] = warp_sum(dsum[r]);

   float acc[RPW][DPL];
#pragma unroll
   for (int r = 0; r < RPW; r++)
#pragma unroll
      for (int c = 0; c < DPL; c++) acc[r][c] = 0.0f;
   for (int j0 = 0; j0 < T; j0 += KTILE) {
      __syncthreads();
      load_tile(kv_s, ld, k, 3 * D, j0, KTILE, T, HD);
      __syncthreads();
      const int j = j0 + lane;
      float ds[RPW];
#pragma unroll
      for (int r = 0; r < RPW; r++) {
         const int i = i0 + warp * RPW + r;
         ds[r] = 0.0f;
         if (i < T && j < T) {
            const int64_t ij = (int64_t)i * T + j;
            ds[r] = pa[ij] * (da[ij] - dsum[r]);
            da[ij] = ds[r];
         }
      }
      const int jn = T - j0 < KTILE ? T - j0 : KTILE;
      for (int jj = 0; jj < jn; jj++) {
#pragma unroll
         for (int r = 0; r < RPW; r++) {
            const float sj = __shfl_sync(0xffffffffu, ds[r], jj);
#pragma unroll
            for (int c = 0; c < DPL; c++) {
               const int d = lane + 32 * c;
               if (d < HD) acc[r][c] += sj * kv_s[jj * ld + d];
            }
         }
      }
   }
#pragma unroll
   for (int r = 0; r < RPW; r++) {
      const int i = i0 + warp * RPW + r;
      if (i >= T) continue;
#pragma unroll
      for (int c = 0; c < DPL; c++) {
         const int d = lane + 32 * c;
         if (d < HD) dq[(int64_t)i * 3 * D + d] = scale * acc[r][c];
      }
   }
}

// columns: dV = Pᵀ · dO, dK = scale · dSᵀ · Q; a block owns 32 keys (8 warps × 4)
static __global__ void attention_backward_kernel2(float *dqkv, const float *datt,
                                                  const float *dout, const float *qkv,
                                                  const float *att, int T, int NH, int HD,
                                                  float scale) {
   extern __shared__ float smem[];
   float *o_s = smem;                       // (QROWS, HD) dO rows
   float *q_s = o_s + QROWS * HD;           // (QROWS, HD) Q rows
   float *p_s = q_s + QROWS * HD;           // (QROWS, KTILE + 1) P tile
   float *s_s = p_s + QROWS * (KTILE + 1);  // (QROWS, KTILE + 1) dS tile
   const int D = NH * HD, lp = KTILE + 1;
   const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
   const int j0 = blockIdx.y * KTILE;
   const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
   const float *q = qkv + (int64_t)b * T * 3 * D + (int64_t)h * HD;
   const float *dO = dout + (int64_t)b * T * D + (int64_t)h * HD;
   float *dk = dqkv + (int64_t)b * T * 3 * D + D + (int64_t)h * HD;
   float *dv = dk + D;
   const float *pa = att + (int64_t)bh * T * T;
   const float *da = datt + (int64_t)bh * T * T;

   float av[RPW][DPL], ak[RPW][DPL];
#pragma unroll
   for (int r = 0; r < RPW; r++)
#pragma unroll
      for (int c = 0; c < DPL; c++) av[r][c] = ak[r][c] = 0.0f;
   for (int i0 = 0; i0 < T; i0 += QROWS) {
      __syncthreads();
      load_tile(o_s, HD, dO, D, i0, QROWS, T, HD);
      load_tile(q_s, HD, q, 3 * D, i0, QROWS, T, HD);
      for (int idx = threadIdx.x; idx < QROWS * KTILE; idx += blockDim.x) {
         const int ii = idx / KTILE, jj = idx % KTILE, i = i0 + ii, j = j0 + jj;
         const int ok = i < T && j < T;
         p_s[ii * lp + jj] = ok ? pa[(int64_t)i * T + j] : 0.0f;
         s_s[ii * lp + jj] = ok ? da[(int64_t)i * T + j] : 0.0f;
      }
      __syncthreads();
      const int in = T - i0 < QROWS ? T - i0 : QROWS;
      for (int ii = 0; ii < in; ii++) {
#pragma unroll
         for (int r = 0; r < RPW; r++) {
            const float pj = p_s[ii * lp + warp * RPW + r];
            const float sj = s_s[ii * lp + warp * RPW + r];
#pragma unroll
            for (int c = 0; c < DPL; c++) {
               const int d = lane + 32 * c;
               if (d < HD) {
                  av[r][c] += pj * o_s[ii * HD + d];
                  ak[r][c] += sj * q_s[ii * HD + d];
               }
            }
         }
      }
   }
#pragma unroll
   for (int r = 0; r < RPW; r++) {
      const int j = j0 + warp * RPW + r;
      if (j >= T) continue;
#pragma unroll
      for (int c = 0; c < DPL; c++) {
         const int d = lane + 32 * c;
         if (d < HD) {
            dv[(int64_t)j * 3 * D + d] = av[r][c];
            dk[(int64_t)j * 3 * D + d] = scale * ak[r][c];
         }
      }
   }
}

static int attention_check(int B, int T, int NH, int HD) {
   if (B <= 0 || T <= 0 || NH <= 0) return 0;
   if (HD < 1 || HD > HD_MAX) {
      hrm_cuda_record(__FILE__, __LINE__, "attention", "head dim must be in 1..128");
      return 0;
   }
   if (T > 65535 * QROWS || (int64_t)B * NH > INT32_MAX) {
      hrm_cuda_record(__FILE__, __LINE__, "attention", "T or B·NH is too large");
      return 0;
   }
   return hrm_cuda_ready();
}

extern "C" void hrm_cuda_attention_forward(float *out, float *att, const float *qkv, int B, int T,
                                           int NH, int HD) {
   if (!attention_check(B, T, NH, HD)) return;
   const float scale = 1.0f / sqrtf((float)HD);
   dim3 grid((unsigned)(B * NH), (unsigned)((T + QROWS - 1) / QROWS));
   attention_forward_kernel1<<<grid, 256, rows_smem(HD), hrm_cuda_stream()>>>(out, att, qkv, T,
                                                                               NH, HD, scale);
   HRM_LAUNCHED();
}

extern "C" void hrm_cuda_attention_backward(float *dqkv, float *datt, const float *dout,
                                            const float *qkv, const float *att, int B, int T,
                                            int NH, int HD) {
   if (!attention_check(B, T, NH, HD)) return;
   const float scale = 1.0f / sqrtf((float)HD);
   dim3 grid1((unsigned)(B * NH), (unsigned)((T + QROWS - 1) / QROWS));
   attention_backward_kernel1<<<grid1, 256, rows_smem(HD), hrm_cuda_stream()>>>(
      dqkv, datt, dout, qkv, att, T, NH, HD, scale);
   HRM_LAUNCHED();
   dim3 grid2((unsigned)(B * NH), (unsigned)((T + KTILE - 1) / KTILE));
   const size_t smem2 = sizeof(float) * (2 * (size_t)QROWS * HD + 2 * (size_t)QROWS * (KTILE + 1));
   attention_backward_kernel2<<<grid2, 256, smem2, hrm_cuda_stream()>>>(dqkv, datt, dout, qkv, att,
                                                                        T, NH, HD, scale);
   HRM_LAUNCHED();
}
