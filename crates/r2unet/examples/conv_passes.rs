//! Throughput of the three 3x3 convolution passes (`r2unet::kernels::conv`) at
//! the retina R2U-Net's four levels (batch 32, C -> C channels), best of five,
//! and of the direct forward and weight gradient where those take Winograd's
//! F(2x2, 3x3):
//!
//! ```sh
//! cargo run --release -p r2unet --example conv_passes
//! ```
//!
//! GFLOP/s count 2 FLOPs per multiply-add of a direct convolution, as
//! `r2unet bench` does; BENCHMARKS.md compares them with the machine's peak.

use std::time::Instant;

use r2unet::kernels::{Maps, conv as passes};

fn main() {
    println!("threads {}", rayon::current_num_threads());
    for (c, s) in [(16usize, 48usize), (32, 24), (64, 12), (128, 6)] {
        let m = Maps {
            batch: 32,
            channels: c,
            height: s,
            width: s,
        };
        let x: Vec<f32> = (0..m.len()).map(|i| (i % 7) as f32 * 0.1).collect();
        let w: Vec<f32> = (0..c * c * 9).map(|i| (i % 5) as f32 * 0.01).collect();
        let b = vec![0.1f32; c];
        let flops = 2.0 * (m.len() * c * 9) as f64;
        let mut best = [f64::MAX; 5];
        for _ in 0..5 {
            let t0 = Instant::now();
            let y = passes::forward(&x, m, &w, c, Some(&b));
            best[0] = best[0].min(t0.elapsed().as_secs_f64());
            let t0 = Instant::now();
            std::hint::black_box(passes::input_grad(&y, m, &w, c));
            best[1] = best[1].min(t0.elapsed().as_secs_f64());
            let t0 = Instant::now();
            std::hint::black_box(passes::weight_grad(&x, m, &y, c));
            best[2] = best[2].min(t0.elapsed().as_secs_f64());
            let t0 = Instant::now();
            std::hint::black_box(passes::direct_forward(&x, m, &w, c, Some(&b)));
            best[3] = best[3].min(t0.elapsed().as_secs_f64());
            let t0 = Instant::now();
            std::hint::black_box(passes::direct_weight_grad(&x, m, &y, c));
            best[4] = best[4].min(t0.elapsed().as_secs_f64());
        }
        let [f, dx, dw, wf, wdw] =
            best.map(|t| format!("{:6.2} ms {:6.1} GFLOP/s", t * 1e3, flops / t / 1e9));
        println!(
            "C = {c:3}, {s:2}x{s:2}: forward {f} | input grad {dx} | weight grad {dw} | direct forward {wf} | direct weight grad {wdw}"
        );
    }
}
