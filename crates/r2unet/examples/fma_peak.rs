//! The processor's peak single-precision rate, counted the way `r2unet bench`
//! counts convolution FLOPs (2 per multiply-add): every rayon thread runs
//! independent chains of fused multiply-adds on 256-bit (AVX2) and on
//! 512-bit (AVX-512) registers, the two widths the register tiles
//! (`kernels::tile`) can use.
//!
//! ```sh
//! cargo run --release -p r2unet --example fma_peak
//! ```
//!
//! No memory traffic: an upper bound that no matrix product reaches, and the
//! yardstick the speed notes in BENCHMARKS.md compare with.

use std::time::Instant;

use rayon::prelude::*;

/// Multiply-adds per chain and round.
const STEPS: usize = 50_000_000;

/// Runs the multiply-add chains for a number of steps; returns their sum.
#[cfg(target_arch = "x86_64")]
type Chains = unsafe fn(usize) -> f32;

fn main() {
    let threads = rayon::current_num_threads();
    println!("threads {threads}");
    #[cfg(target_arch = "x86_64")]
    {
        let widths: [(&str, bool, Chains, usize); 2] = [
            ("256-bit", is_x86_feature_detected!("fma"), x86::fma256, 8),
            (
                "512-bit",
                is_x86_feature_detected!("avx512f"),
                x86::fma512,
                16,
            ),
        ];
        for (name, present, run, lanes) in widths {
            if !present {
                println!("{name}: not supported by this processor");
                continue;
            }
            let best = (0..3)
                .map(|_| {
                    let start = Instant::now();
                    // SAFETY: the width's instructions are present (checked above).
                    let sink: f32 = (0..threads)
                        .into_par_iter()
                        .map(|_| unsafe { run(STEPS) })
                        .sum();
                    std::hint::black_box(sink);
                    start.elapsed().as_secs_f64()
                })
                .fold(f64::INFINITY, f64::min);
            let flops = (threads * STEPS * x86::CHAINS * lanes * 2) as f64;
            println!("{name}: {:.0} GFLOP/s", flops / best / 1e9);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    println!("only x86-64 is measured");
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Independent accumulators: enough to cover the multiply-add latency.
    pub const CHAINS: usize = 12;

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma256(steps: usize) -> f32 {
        let (a, b) = (_mm256_set1_ps(1.000_001), _mm256_set1_ps(0.999_999));
        let mut c = [_mm256_setzero_ps(); CHAINS];
        for _ in 0..steps {
            for x in c.iter_mut() {
                *x = _mm256_fmadd_ps(a, b, *x);
            }
        }
        let mut lanes = [0.0f32; 8];
        let sum = c
            .iter()
            .fold(_mm256_setzero_ps(), |s, x| _mm256_add_ps(s, *x));
        // SAFETY: `lanes` holds 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
        lanes.iter().sum()
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma512(steps: usize) -> f32 {
        let (a, b) = (_mm512_set1_ps(1.000_001), _mm512_set1_ps(0.999_999));
        let mut c = [_mm512_setzero_ps(); CHAINS];
        for _ in 0..steps {
            for x in c.iter_mut() {
                *x = _mm512_fmadd_ps(a, b, *x);
            }
        }
        _mm512_reduce_add_ps(
            c.iter()
                .fold(_mm512_setzero_ps(), |s, x| _mm512_add_ps(s, *x)),
        )
    }
}
