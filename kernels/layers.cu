/* layers.cu — the pointwise and row-wise layers on the GPU: input embedding (gather/scatter,
 * puzzle prefix, learned positions, √D scale), RMSNorm (plain and fused with the residual add),
 * RoPE (half-split), SwiGLU, the residual add and the batched transpose of the token-mixing
 * block (TRM-MLP).
 *
 * Same contracts as core/cpu/ (see backend.h). Row reductions (RMSNorm) use one warp per row in
 * fp32. The token-table gradient is a scatter-add with atomics, so its summation order (and
 * last bits) differs from the CPU's; everything else is written once per element.
 */
#include <stdlib.h>

#include "common.cuh"


/* ---- embedding ------------------------------------------------------------------------------ */

// out (B, T, D) = scale · ([prefix (B, E) padded to (P, D) ; tok[inputs] (B, S, D)] (+ pos))
static __global__ void embedding_forward_kernel1(float *out, const int32_t *inputs,
                                                 const float *tok, const float *prefix,
                                                 const float *pos, int B, int S, int P, int D,
                                                 int E, float scale) {
   const int T = S + P;
   const int64_t total = (int64_t)B * T * D;
   for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
        i += (int64_t)gridDim.x * blockDim.x) {
      const int d = (int)(i % D);
      const int64_t bt = i / D;
      const int t = (int)(bt % T), b = (int)(bt / T);
      float o;
      if (t < P) {
         const int j = t * D + d;
         o = (prefix && j < E) ? prefix[(int64_t)b * E + j] : 0.0f;
      } else {
         o = tok[(int64_t)inputs[(int64_t)b * S + (t - P)] * D + d];
      }
      if (pos) o = HRM_POS_SCALE * (o + pos[(int64_t)t * D + d]);
      out[i] = scale * o;
   }
}

// dtok (V, D) += (atomic), dprefix (B, E) += from dout (B, T, D)
static __global__ void embedding_backward_kernel1(float *dtok, float *dprefix, const float *dout,
                                                  const int32_t *inputs, int B, int S, int P,
                                                  int D, int E, float scale, int learned) {
   const int T = S + P;
   const int64_t total = (int64_t)B * T * D;
   for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
        i += (int64_t)gridDim.x * blockDim.x) {
      const int d = (int)(i % D);
      const int64_t bt = i / D;
      const int t = (int)(bt % T), b = (int)(bt / T);
      float g = scale * dout[i];
      if (learned) g = HRM_POS_SCALE * g;
      if (t < P) {
         const int j = t * D + d;
         if (dprefix && j < E) dprefix[(int64_t)b * E + j] += g;  // one (t, d) per (b, j)
      } else {
         atomicAdd(&dtok[(int64_t)inputs[(int64_t)b * S + (t - P)] * D + d], g);
      }
   }
}

// dpos (T, D) += Σ_b scale · 0.7071 · dout (B, T, D)
static __global__ void embedding_pos_backward_kernel1(float *dpos, const float *dout, int B, int T,
                                                      int D, float scale) {
   const int64_t total = (int64_t)T * D;
   for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
        i += (int64_t)gridDim.x * blockDim.x) {
      float acc = 0.0f;
      for (int b = 0; b < B; b++) acc += HRM_POS_SCALE * (scale * dout[(int64_t)b * total + i]);
      dpos[i] += acc;
   }
}

extern "C" void hrm_cuda_embedding_forward(float *out, const int32_t *inputs, const float *tok,
                                           const float *prefix, const float *pos, int B, int S,
                                           int P, int D, int E, float scale) {
   const int64_t total = (int64_t)B * (S + P) * D;
   if (total <= 0) return;
   HRM_READY();
   embedding_forward_kernel1<<<hrm_blocks(total, 256), 256, 0, hrm_cuda_stream()>>>(
      out, inputs, tok, prefix, pos, B, S, P, D, E, scale);
   HRM_LAUNCHED();
}

extern "C" void hrm_cuda_embedding_backward(float *dtok, float *dprefix, float *dpos,
                                            const float *dout, const int32_t *inputs, int B,
                                            int S, int P, int D, int E, float scale,
                                            int learned) {
   const int T = S + P;
   const int64_t total = (int64_t)B * T * D;
   if (total <= 0) return;
   HRM_READY();
   embedding_backward_kernel1<<<hrm_blocks(total, 256), 256, 0, hrm_cuda_stream()>>>(
      dtok, dprefix, dout, inputs, B, S, P, D, E, scale, learned);
   HRM_LAUNCHED();
   if (learned && dpos) {
      embedding_pos_backward_kernel1<<<hrm_blocks((int64_t)T * D, 256), 256, 0,
                                       hrm_cuda_stream()>>>(dpos, dout, B, T, D, scale);
      HRM_LAUNCHED();
   }
}

/* ---- RMSNorm -------------------------------------------------------------------------------- */

// one warp per row: out (N, D) = x · rsqrt(mean(x²) + eps), x = a (+ b); sum (N, D) = x if set
static __global__ void rmsnorm_forward_kernel1(float *out, float *rstd, float *sum, const float *a,
                                               const float *b, int64_t N, int D, float eps) {
   const int lane = threadIdx.x & 31;
   const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
   for (int64_t n = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5); n < N;
        n += warps) {
      const float *xa = a + n * D;
      const float *xb = b ? b + n * D : NULL;
      float ss = 0.0f;
      for (int d = lane; d < D; d += 32) {
         const float x = xb ? xa[d] + xb[d] : xa[d];
         ss += x * x;
      }
      ss = warp_sum(ss);
      const float r = 1.0f / sqrtf(ss / (float)D + eps);
      float *y = out + n * D;
      float *s = sum ? sum + n * D : NULL;
      for (int d = lane; d < D; d += 32) {
         const float x = xb ? xa[d] + xb[d] : xa[d];  // read before out (may alias a or b)
         if (s) s[d] = x;
         y[d] = x * r;
      }
      if (rstd && lane == 0) rstd[n] = r;
   }
}

// one warp per row: dx = rstd · (dy − y · mean(dy · y)); dinp may alias dout
static __global__ void rmsnorm_backward_kernel1(float *dinp, const float *dout, const float *out,
                                                const float *rstd, int64_t N, int D) {
   const int lane = threadIdx.x & 31;
   const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
   for (int64_t n = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5); n < N;
        n += warps) {
      const float *dy = dout + n * D;
      const float *y = out + n * D;
      float dot = 0.0f;
      for (int d = lane; d < D; d += 32) dot += dy[d] * y[d];
      dot = warp_sum(dot);
      const float mean = dot / (float)D, r = rstd[n];
      float *dx = dinp + n * D;
      for (int d = lane; d < D; d += 32) dx[d] = r * (dy[d] - y[d] * mean);
   }
}

static unsigned int row_blocks(int64_t N) {  // 8 warps (rows) per 256-thread block
   int64_t b = (N + 7) / 8;
   if (b > 65535 * 8) b = 65535 * 8;
   return (unsigned int)(b < 1 ? 1 : b);
}

extern "C" void hrm_cuda_rmsnorm_forward(float *out, float *rstd, const float *inp, int64_t N,
                                         int D, float eps) {
   if (N <= 0) return;
   HRM_READY();
   rmsnorm_forward_kernel1<<<row_blocks(N), 256, 0, hrm_cuda_stream()>>>(out, rstd, NULL, inp,
                                                                         NULL, N, D, eps);
   HRM_LAUNCHED();
}

extern "C" void hrm_cuda_residual_rmsnorm_forward(float *out, float *rstd, float *sum,
                                                  const float *a, const float *b, int64_t N,
                                                  int D, float eps) {
   if (N <= 0) return;
   HRM_READY();
   rmsnorm_forward_kernel1<<<row_blocks(N), 256, 0, hrm_cuda_stream()>>>(out, rstd, sum, a, b, N,
                                                                         D, eps);
   HRM_LAUNCHED();
}

extern "C" void hrm_cuda_rmsnorm_backward(float *dinp, const float *dout, const float *out,
                                          const float *rstd, int64_t N, int D) {
   if (N <= 0) return;
   HRM_READY();
   rmsnorm_backward_kernel1<<<row_blocks(N), 256, 0, hrm_cuda_stream()>>>(dinp, dout, out, rstd,
                                                                          N, D);
   HRM_LAUNCHED();
}

/* ---- RoPE ----------------------------------------------------------------------------------- */

// in place on the Q and K blocks of qkv (B, T, 3D); one thread per rotated pair (j, j + HD/2)
static __global__ void rope_forward_kernel1(float *qkv, const float *cos_t, const float *sin_t,
                                            int B, int T, int NH, int HD, float sign) {
   const int half = HD / 2, D = NH * HD;
   const int64_t total = (int64_t)B * T * 2 * NH * half;
   for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
        i += (int64_t)gridDim.x * blockDim.x) {
      const int j = (int)(i % half);
      int64_t r = i / half;
      const int h = (int)(r % NH);
      r /= NH;
      const int blk = (int)(r % 2);
      const int64_t bt = r / 2;
      const int t = (int)(bt % T);
      const float *c = cos_t + (int64_t)t * HD;
      const float *s = sin_t + (int64_t)t * HD;
      float *x = qkv + bt * 3 * D + (int64_t)blk * D + (int64_t)h * HD;
      const float x1 = x[j], x2 = x[j + half];
      x[j] = x1 * c[j] - sign * (x2 * s[j]);
      x[j + half] = x2 * c[j + half] + sign * (x1 * s[j + half]);
   }
}

static void rope_launch(float *qkv, const float *cos_t, const float *sin_t, int B, int T, int NH,
                        int HD, float sign) {
   const int64_t total = (int64_t)B * T * 2 * NH * (HD / 2);
   if (total <= 0) return;
   HRM_READY();
   rope_forward_kernel1<<<hrm_blocks(total, 256), 256, 0, hrm_cuda_stream()>>>(
      qkv, cos_t, sin_t, B, T, NH, HD, sign);
   HRM_LAUNCHED();
}

extern "C" void hrm_cuda_rope_forward(float *qkv, const float *cos_t, const float *sin_t, int B,
                                      int T, int NH, int HD) {
   rope_launch(qkv, cos_t, sin_t, B, T, NH, HD, 1.0f);
}

extern "C" void hrm_cuda_rope_backward(float *dqkv, const float *cos_t, const float *sin_t,
                                       int B, int T, int NH, int HD) {
   rope_launch(dqkv, cos_t, sin_t, B, T, NH, HD, -1.0f);
}

/* The tables are made once per block on the host with the CPU's fp32 formula (so both tables
 * rotate by the same numbers), then uploaded. */
extern "C" void hrm_cuda_rope_tables(float *cos_t, float *sin_t, int T, int HD, double theta) {
   const size_t n = (size_t)T * (size_t)HD;
   float *host = (float *)malloc(2 * n * sizeof(float));
   if (!host) {
      hrm_cuda_record(__FILE__, __LINE__, "rope_tables", "out of host memory");
      return;
   }
   float *hc = host, *hs = host + n;
   const int half = HD / 2;
   for (int i = 0; i < half; i++) {
      const float inv_freq = 1.0f / powf((float)theta, (float)(2 * i) / (float)HD);
      for (int t = 0; t < T; t++) {
         const float f = (float)t * inv_freq;
         hc[(size_t)t * HD + i] = hc[(size_t)t * HD + i + half] = cosf(f);
         hs[(size_t)t * HD + i] = hs[(size_t)t * HD + i + half] = sinf(f);
      }
   }
   if (hrm_cuda_upload(cos_t, hc, n * sizeof(float)) == HRM_OK)
      (void)hrm_cuda_upload(sin_t, hs, n * sizeof(float));
   free(host);
}

/* ---- SwiGLU and the residual add ------------------------------------------------------------ */

// out (N, I) = silu(gate) · up, gu (N, 2I) = [gate | up]
static __global__ void swiglu_forward_kernel1(float *out, const float *gu, int64_t N, int I) {
   const int64_t total = N * I;
   for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < total;
        k += (int64_t)gridDim.x * blockDim.x) {
      const int64_t n = k / I;
      const int i = (int)(k % I);
      const float g = gu[n * 2 * I + i], u = gu[n * 2 * I + I + i];
      out[k] = (g / (1.0f + expf(-g))) * u;
   }
}

// dgu (N, 2I) from dout (N, I) and gu (N, 2I)
static __global__ void swiglu_backward_kernel1(float *dgu, const float *dout, const float *gu,
                                               int64_t N, int I) {
   const int64_t total = N * I;
   for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < total;
        k += (int64_t)gridDim.x * blockDim.x) {
      const int64_t n = k / I;
      const int i = (int)(k % I);
      const float g = gu[n * 2 * I + i], u = gu[n * 2 * I + I + i], dy = dout[k];
      const float sig = 1.0f / (1.0f + expf(-g));
      dgu[n * 2 * I + I + i] = dy * (g * sig);
      dgu[n * 2 * I + i] = dy * u * (sig * (1.0f + g * (1.0f - sig)));
   }
}

// out (n) = a + b; out may alias a or b
static __global__ void residual_forward_kernel1(float *out, const float *a, const float *b,
                                                int64_t n) {
   for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
        i += (int64_t)gridDim.x * blockDim.x)
      out[i] = a[i] + b[i];
}

extern "C" void hrm_cuda_swiglu_forward(float *out, const float *gu, int64_t N, int I) {
   if (N <= 0 || I <= 0) return;
   HRM_READY();
   swiglu_forward_kernel1<<<hrm_blocks(N * I, 256), 256, 0, hrm_cuda_stream()>>>(out, gu, N, I);
   HRM_LAUNCHED();
}

extern "C" void hrm_cuda_swiglu_backward(float *dgu, const float *dout, const float *gu,
                                         int64_t N, int I) {
   if (N <= 0 || I <= 0) return;
   HRM_READY();
   swiglu_backward_kernel1<<<hrm_blocks(N * I, 256), 256, 0, hrm_cuda_stream()>>>(dgu, dout, gu,
                                                                                  N, I);
   HRM_LAUNCHED();
}

extern "C" void hrm_cuda_residual_forward(float *out, const float *a, const float *b, int64_t n) {
   if (n <= 0) return;
   HRM_READY();
   residual_forward_kernel1<<<hrm_blocks(n, 256), 256, 0, hrm_cuda_stream()>>>(out, a, b, n);
   HRM_LAUNCHED();
}

/* ---- batched transpose (the token-mixing block) ---------------------------------------------- */

// out (B, C, R) = in (B, R, C)ᵀ per batch, through a 32 x 33 shared tile (no bank conflicts);
// grid (ceil(C/32), ceil(R/32), B), block (32, 8)
static __global__ void transpose_forward_kernel1(float *out, const float *in, int R, int C) {
   __shared__ float tile[32][33];
   const int64_t b = blockIdx.z;
   const float *src = in + b * (int64_t)R * C;
   float *dst = out + b * (int64_t)R * C;
   const int c = blockIdx.x * 32 + threadIdx.x;
   for (int k = threadIdx.y; k < 32; k += 8) {
      const int r = blockIdx.y * 32 + k;
      if (r < R && c < C) tile[k][threadIdx.x] = src[(int64_t)r * C + c];
   }
   __syncthreads();
   const int r = blockIdx.y * 32 + threadIdx.x;
   for (int k = threadIdx.y; k < 32; k += 8) {
      const int cc = blockIdx.x * 32 + k;
      if (r < R && cc < C) dst[(int64_t)cc * R + r] = tile[threadIdx.x][k];
   }
}

extern "C" void hrm_cuda_transpose_forward(float *out, const float *in, int B, int R, int C) {
   if (B <= 0 || R <= 0 || C <= 0) return;
   HRM_READY();
   const dim3 grid((unsigned)((C + 31) / 32), (unsigned)((R + 31) / 32), (unsigned)B);
   transpose_forward_kernel1<<<grid, dim3(32, 8), 0, hrm_cuda_stream()>>>(out, in, R, C);
   HRM_LAUNCHED();
}
