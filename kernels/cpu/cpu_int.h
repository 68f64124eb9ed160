/*
 * cpu_int.h -- what the CPU backend's files share; not part of the backend's API.
 */
#ifndef MNEMO_KERNELS_CPU_INT_H
#define MNEMO_KERNELS_CPU_INT_H

#include "kernels/kernels.h"

/* a[0..t] = softmax(a[0..t]); a[t+1..end) = 0 (the future has no weight) */
void kernels__softmax_causal_row(float *a, int t, int end);
/* d[0..t] = a * (d - sum(a * d)) * scale, the softmax backward of one row;
 * d[t+1..end) = 0 */
void kernels__softmax_causal_row_backward(float *d, const float *a, int t, int end, float scale);

/* Attention for heads of 64 with AVX-512 (attention_avx512.c); usable() says whether this
 * CPU and shape can take it.  scratch: B*NH*T*T + B*C*(T+80) floats for both. */
bool kernels__attention_avx512_usable(int C, int NH);
void kernels__attention_forward_avx512(float *out, float *att, float *scratch, const float *qkv,
                                       int B, int T, int C, int NH);
void kernels__attention_backward_avx512(float *dqkv, float *scratch, const float *dout,
                                        const float *qkv, const float *att, int B, int T, int C,
                                        int NH);
/* tests: take the portable sgemm path even where AVX-512 is usable */
void kernels__cpu_force_portable_attention(bool on);

#endif /* MNEMO_KERNELS_CPU_INT_H */
