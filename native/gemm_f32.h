#pragma once

namespace rfid {

/**
 * C (m×n, row-major) = alpha·op(A)·op(B) + beta·C in f32, m, n, k ≥ 1: the gemm entry point's
 * choice of kernel (gemv for one row, the small-rows kernel for a few rows against a row-major
 * B, else sgemm, on one OpenBLAS thread when the product is small). Kernels that run products
 * of their own call it so that they compute exactly what the same gemm calls from JavaScript do.
 */
void GemmF32(int m, int n, int k, float alpha, const float* a, bool transA, const float* b, bool transB, float beta, float* c);

/** The same with C's rows ldc ≥ n apart (a column block of a wider C). */
void GemmF32Strided(int m, int n, int k, float alpha, const float* a, bool transA, const float* b, bool transB, float beta, float* c,
                    int ldc);

}  // namespace rfid
