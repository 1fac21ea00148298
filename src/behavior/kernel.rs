//! The similarity kernel: a dot product of two `f32` slices.
//!
//! AVX2 with FMA (four 8-lane accumulators) when the CPU has them, detected once at run time;
//! otherwise a portable loop over eight independent accumulators, which the compiler turns into
//! SSE2 on any x86-64 (and NEON on ARM). Callers scale one side to unit length first
//! (`embedding::unit`), so the single-precision sum stays far from underflow and overflow.

use std::sync::OnceLock;

type DotFn = unsafe fn(&[f32], &[f32]) -> f32;

static DOT: OnceLock<DotFn> = OnceLock::new();

/// The kernel this CPU runs: `"avx2+fma"` or `"portable"`.
pub fn kernel_name() -> &'static str {
    if std::ptr::fn_addr_eq(select(), dot_portable as DotFn) { "portable" } else { "avx2+fma" }
}

fn select() -> DotFn {
    *DOT.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return dot_avx2 as DotFn;
            }
        }
        dot_portable as DotFn
    })
}

/// `Σ a[i]·b[i]` over the common length (callers pass equal lengths).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: the AVX2 variant is selected only on CPUs that have AVX2 and FMA.
    unsafe { select()(a, b) }
}

/// Eight independent accumulators: no loop-carried dependency on a single sum, so the loop
/// vectorises without `-ffast-math`.
pub fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let chunks = n / 8;
    for c in 0..chunks {
        let (x, y) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = 0f32;
    for i in chunks * 8..n {
        tail += a[i] * b[i];
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    let mut acc2 = _mm256_setzero_ps();
    let mut acc3 = _mm256_setzero_ps();
    let mut i = 0;
    while i + 32 <= n {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 8)), _mm256_loadu_ps(pb.add(i + 8)), acc1);
        acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 16)), _mm256_loadu_ps(pb.add(i + 16)), acc2);
        acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 24)), _mm256_loadu_ps(pb.add(i + 24)), acc3);
        i += 32;
    }
    while i + 8 <= n {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
        i += 8;
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
    let half = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps(sum, 1));
    let quarter = _mm_add_ps(half, _mm_movehl_ps(half, half));
    let one = _mm_add_ss(quarter, _mm_shuffle_ps(quarter, quarter, 1));
    let mut total = _mm_cvtss_f32(one);
    while i < n {
        total += *pa.add(i) * *pb.add(i);
        i += 1;
    }
    total
}

/// Both kernels, for the tests: `(portable, avx2)`; `avx2` is `None` on CPUs without it.
#[cfg(any(test, feature = "pg_test"))]
pub fn both(a: &[f32], b: &[f32]) -> (f32, Option<f32>) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: checked just above.
            return (dot_portable(a, b), Some(unsafe { dot_avx2(a, b) }));
        }
    }
    (dot_portable(a, b), None)
}
