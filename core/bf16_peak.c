/* bf16_peak.c — the machine's bf16 dot-product rate (bf16 operand pairs, fp32 sums), the ceiling
 * no bf16 GEMM can pass, as fma_peak.c is the fp32 one.
 *
 * Chosen at run time whatever this build's -march: AMX tiles (TDPBF16PS) where CPUID reports
 * amx-tile and amx-bf16 and Linux grants this process the tile data; else AVX-512 BF16
 * (VDPBF16PS, twelve independent chains as in fma_peak.c); else nothing (0 GFLOP/s, "none").
 * Each OpenMP thread times itself on its own CPU clock and the rates of all threads add up.
 * FLOPs: one 512-bit VDPBF16PS is 32 bf16 pairs = 64; one TDPBF16PS on full tiles is a 16x16
 * fp32 C += a 16x32 bf16 A times a 32x16 bf16 B = 16*16*32*2.
 */
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arith_peak.h"
#include "hrm.h"

#if HRM_X86
#define BF16_SET(v) _mm512_cvtne2ps_pbh(_mm512_set1_ps(v), _mm512_set1_ps(v))
#define BF16_DOT(x, y, acc) _mm512_dpbf16_ps(acc, x, y)
__attribute__((target("avx512bf16,avx512f"))) static double rate_avx512_bf16(long iters,
                                                                            float *sink) {
   CHAINS(__m512, _mm512_set1_ps, __m512bh, BF16_SET, BF16_DOT, _mm512_reduce_add_ps, 64);
}
#endif

#if defined(__x86_64__)
#include <cpuid.h>

enum {
   ARCH_REQ_XCOMP_PERM_CODE = 0x1023,  // arch_prctl: ask for an XSAVE feature's state
   XFEATURE_XTILEDATA_BIT = 18,        // the AMX tile data
   AMX_FLOP_PER_OP = 16 * 16 * 32 * 2,
};

/* LDTILECFG's 64-byte operand (palette 1: eight tiles of at most 16 rows of 64 bytes). */
struct tile_config {
   uint8_t palette_id;
   uint8_t start_row;
   uint8_t reserved[14];
   uint16_t colsb[16];  // bytes per row of tile i
   uint8_t rows[16];    // rows of tile i
};

/* CPUID.(7,0):EDX bit 22 amx-bf16, bit 24 amx-tile, and Linux's permission to use the tile data
 * (without it the first tile instruction faults). */
static int amx_usable(void) {
   unsigned eax, ebx, ecx, edx;
   if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
   if (!(edx & (1u << 22)) || !(edx & (1u << 24))) return 0;
   return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM_CODE, XFEATURE_XTILEDATA_BIT) == 0;
}

static uint16_t bf16_bits(float f) {
   uint32_t u;
   memcpy(&u, &f, sizeof u);
   return (uint16_t)(u >> 16);
}

/* Four C tiles (0-3, 16x16 fp32) each += A (tile 4, 16 rows of 32 bf16) · B (tile 5, 16 rows of
 * 16 bf16 pairs): four independent TDPBF16PS chains sharing their operands. */
__attribute__((target("amx-tile,amx-bf16"))) static double rate_amx(long iters, float *sink) {
   struct tile_config cfg = {.palette_id = 1};
   for (int t = 0; t < 6; t++) cfg.rows[t] = 16, cfg.colsb[t] = 64;
   _Alignas(64) uint16_t a[16 * 32], b[16 * 32];
   _Alignas(64) float c[4][16 * 16];
   for (int i = 0; i < 16 * 32; i++) a[i] = bf16_bits(1e-9f), b[i] = bf16_bits(1.0f);
   _tile_loadconfig(&cfg);
   _tile_loadd(4, a, 64);
   _tile_loadd(5, b, 64);
   _tile_zero(0);
   _tile_zero(1);
   _tile_zero(2);
   _tile_zero(3);
   const double t0 = thread_cpu_seconds();
   for (long i = 0; i < iters; i++) {
      _tile_dpbf16ps(0, 4, 5);
      _tile_dpbf16ps(1, 4, 5);
      _tile_dpbf16ps(2, 4, 5);
      _tile_dpbf16ps(3, 4, 5);
   }
   const double dt = thread_cpu_seconds() - t0;
   _tile_stored(0, c[0], 64);
   _tile_stored(1, c[1], 64);
   _tile_stored(2, c[2], 64);
   _tile_stored(3, c[3], 64);
   float sum = 0.0f;
   for (int t = 0; t < 4; t++)
      for (int i = 0; i < 16 * 16; i++) sum += c[t][i];
   _tile_release();
   *sink = sum;
   return dt > 0 ? 4.0 * AMX_FLOP_PER_OP * (double)iters / dt / 1e9 : 0.0;
}
#endif

const char *hrm_bf16_isa(void) {
#if defined(__x86_64__)
   if (amx_usable()) return "amx";
#endif
#if HRM_X86
   if (__builtin_cpu_supports("avx512bf16")) return "avx512_bf16";
#endif
   return "none";
}

double hrm_bf16_peak_gflops(const char **isa) {
   const char *name = hrm_bf16_isa();
   double (*rate)(long, float *) = NULL;
   long iters = 0;
#if defined(__x86_64__)
   if (strcmp(name, "amx") == 0) rate = rate_amx, iters = 1500000L;  // ~1 TFLOP/s a core
#endif
#if HRM_X86
   if (strcmp(name, "avx512_bf16") == 0) rate = rate_avx512_bf16, iters = 20000000L;  // one a cycle
#endif
   if (isa) *isa = name;
   return rate ? peak_on_all_threads(rate, iters) : 0.0;  // ~0.1 s per run either way
}
