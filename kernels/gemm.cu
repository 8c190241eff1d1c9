/* gemm.cu — matrix products on the GPU: the table's gemm and CastedLinear, plus a bf16-operand
 * GEMM over cuBLASLt and the f32 → bf16 cast.
 *
 * Row-major products are computed as the column-major transposed product (Cᵀ = op(B)ᵀ·op(A)ᵀ),
 * so no data is moved. The table's entries take fp32 arrays; the context's mode picks fp32,
 * tf32 or bf16 tensor-core math (inputs rounded, fp32 accumulation) via cublasGemmEx compute
 * types. Bias add and bias gradient are small kernels; the bias gradient sums columns in fp32.
 */
#include <cuda_bf16.h>

#include "common.cuh"

static cublasComputeType_t compute_type(void) {
   switch (hrm_cuda_gemm_mode()) {
   case HRM_CUDA_GEMM_TF32: return CUBLAS_COMPUTE_32F_FAST_TF32;
   case HRM_CUDA_GEMM_BF16: return CUBLAS_COMPUTE_32F_FAST_16BF;
   default: return CUBLAS_COMPUTE_32F;
   }
}

extern "C" void hrm_cuda_gemm_forward(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                                      float alpha, const float *A, int64_t lda, const float *B,
                                      int64_t ldb, float beta, float *C, int64_t ldc) {
   if (M <= 0 || N <= 0) return;
   HRM_READY();
   if (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX || lda > INT32_MAX || ldb > INT32_MAX ||
       ldc > INT32_MAX) {
      hrm_cuda_record(__FILE__, __LINE__, "gemm", "a size exceeds 2^31 - 1");
      return;
   }
   const cublasOperation_t opA = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
   const cublasOperation_t opB = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
   /* column-major: Cᵀ (N, M) = op(B)ᵀ (N, K) · op(A)ᵀ (K, M) */
   HRM_CUBLAS(cublasGemmEx(hrm_cuda_blas(), opB, opA, (int)N, (int)M, (int)K, &alpha, B,
                           CUDA_R_32F, (int)ldb, A, CUDA_R_32F, (int)lda, &beta, C, CUDA_R_32F,
                           (int)ldc, compute_type(), CUBLAS_GEMM_DEFAULT));
}

extern "C" void hrm_cuda_gemm_bf16_forward(int trans_a, int trans_b, int64_t M, int64_t N,
                                           int64_t K, float alpha, const uint16_t *A,
                                           int64_t lda, const uint16_t *B, int64_t ldb,
                                           float beta, float *C, int64_t ldc) {
   if (M <= 0 || N <= 0) return;
   HRM_READY();
   const cublasOperation_t opA = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
   const cublasOperation_t opB = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
   cublasLtMatmulDesc_t op = NULL;
   cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
   cublasLtMatmulPreference_t pref = NULL;
   cublasStatus_t s = cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
   /* column-major view: first operand is B (rows N, cols K after op), second is A */
   if (s == CUBLAS_STATUS_SUCCESS)
      s = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &opB, sizeof opB);
   if (s == CUBLAS_STATUS_SUCCESS)
      s = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &opA, sizeof opA);
   /* stored shapes (column-major rows × cols) of the two operands before op */
   const uint64_t b_rows = trans_b ? (uint64_t)K : (uint64_t)N, b_cols = trans_b ? N : K;
   const uint64_t a_rows = trans_a ? (uint64_t)M : (uint64_t)K, a_cols = trans_a ? K : M;
   if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, b_rows, b_cols, ldb);
   if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, a_rows, a_cols, lda);
   if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, N, M, ldc);
   size_t ws_bytes = 0;
   void *ws = hrm_cuda_lt_workspace(&ws_bytes);
   if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtMatmulPreferenceCreate(&pref);
   if (s == CUBLAS_STATUS_SUCCESS)
      s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                               &ws_bytes, sizeof ws_bytes);
   cublasLtMatmulHeuristicResult_t heur;
   int found = 0;
   if (s == CUBLAS_STATUS_SUCCESS)
      s = cublasLtMatmulAlgoGetHeuristic(hrm_cuda_lt(), op, la, lb, lc, lc, pref, 1, &heur, &found);
   if (s == CUBLAS_STATUS_SUCCESS && found == 0) s = CUBLAS_STATUS_NOT_SUPPORTED;
   if (s == CUBLAS_STATUS_SUCCESS)
      s = cublasLtMatmul(hrm_cuda_lt(), op, &alpha, B, la, A, lb, &beta, C, lc, C, lc,
                         &heur.algo, ws, ws_bytes, hrm_cuda_stream());
   if (pref) cublasLtMatmulPreferenceDestroy(pref);
   if (lc) cublasLtMatrixLayoutDestroy(lc);
   if (lb) cublasLtMatrixLayoutDestroy(lb);
   if (la) cublasLtMatrixLayoutDestroy(la);
   if (op) cublasLtMatmulDescDestroy(op);
   if (s != CUBLAS_STATUS_SUCCESS)
      hrm_cuda_record(__FILE__, __LINE__, "cublasLtMatmul (bf16)", hrm_cublas_status_name(s));
}

static __global__ void f32_to_bf16_forward_kernel1(__nv_bfloat16 *out, const float *inp,
                                                    int64_t n) {
   for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
        i += (int64_t)gridDim.x * blockDim.x)
      out[i] = __float2bfloat16_rn(inp[i]);
}

extern "C" void hrm_cuda_f32_to_bf16_forward(uint16_t *out, const float *inp, int64_t n) {
   if (n <= 0) return;
   HRM_READY();
   f32_to_bf16_forward_kernel1<<<hrm_blocks(n, 256), 256, 0, hrm_cuda_stream()>>>(
      (__nv_bfloat16 *)out, inp, n);
   HRM_LAUNCHED();
}

static __global__ void bf16_to_f32_forward_kernel1(float *out, const __nv_bfloat16 *inp,
                                                    int64_t n) {
   for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
        i += (int64_t)gridDim.x * blockDim.x)
      out[i] = __bfloat162float(inp[i]);
}

extern "C" void hrm_cuda_bf16_to_f32_forward(float *out, const uint16_t *inp, int64_t n) {
   if (n <= 0) return;
   HRM_READY();
   bf16_to_f32_forward_kernel1<<<hrm_blocks(n, 256), 256, 0, hrm_cuda_stream()>>>(
      out, (const __nv_bfloat16 *)inp, n);
   HRM_LAUNCHED();
}

/* ---- CastedLinear ----------------------------------------------------------------------------- */

// out (N, OC) += bias (OC) broadcast over rows
static __global__ void bias_forward_kernel1(float *out, const float *bias, int64_t N, int OC) {
   const int64_t total = N * OC;
   for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
        i += (int64_t)gridDim.x * blockDim.x)
      out[i] += bias[i % OC];
}

// dbias (OC) += Σ_n dout (N, OC): block (32, 8) per 32 columns, rows strided by 8
static __global__ void bias_backward_kernel1(float *dbias, const float *dout, int64_t N, int OC) {
   __shared__ float part[8][33];
   const int o = blockIdx.x * 32 + threadIdx.x;
   float acc = 0.0f;
   if (o < OC)
      for (int64_t n = threadIdx.y; n < N; n += 8) acc += dout[n * OC + o];
   part[threadIdx.y][threadIdx.x] = acc;
   __syncthreads();
   if (threadIdx.y == 0 && o < OC) {
      float s = 0.0f;
      for (int k = 0; k < 8; k++) s += part[k][threadIdx.x];
      dbias[o] += s;
   }
}

extern "C" void hrm_cuda_linear_forward(float *out, const float *inp, const float *weight,
                                        const float *bias, int64_t N, int C, int OC) {
   // out (N, OC) = inp (N, C) · weightᵀ (C, OC)
   hrm_cuda_gemm_forward(0, 1, N, OC, C, 1.0f, inp, C, weight, C, 0.0f, out, OC);
   if (bias) hrm_cuda_add_bias(out, bias, N, OC);
}

extern "C" void hrm_cuda_add_bias(float *out, const float *bias, int64_t N, int OC) {
   if (N <= 0 || OC <= 0) return;
   HRM_READY();
   bias_forward_kernel1<<<hrm_blocks(N * OC, 256), 256, 0, hrm_cuda_stream()>>>(out, bias, N, OC);
   HRM_LAUNCHED();
}

extern "C" void hrm_cuda_bias_backward(float *dbias, const float *dout, int64_t N, int OC) {
   if (N <= 0 || OC <= 0) return;
   HRM_READY();
   const dim3 block(32, 8);
   bias_backward_kernel1<<<(OC + 31) / 32, block, 0, hrm_cuda_stream()>>>(dbias, dout, N, OC);
   HRM_LAUNCHED();
}

extern "C" void hrm_cuda_linear_backward(float *dinp, float *dweight, float *dbias,
                                         const float *dout, const float *inp,
                                         const float *weight, int64_t N, int C, int OC,
                                         float dinp_beta) {
   // dinp (N, C) = beta·dinp + dout (N, OC) · weight (OC, C)
   if (dinp) hrm_cuda_gemm_forward(0, 0, N, C, OC, 1.0f, dout, OC, weight, C, dinp_beta, dinp, C);
   // dweight (OC, C) += doutᵀ (OC, N) · inp (N, C)
   if (dweight) hrm_cuda_gemm_forward(1, 0, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
   if (dbias) hrm_cuda_bias_backward(dbias, dout, N, OC);
}
