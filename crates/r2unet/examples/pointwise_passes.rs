//! Throughput of the 1x1 convolutions of the retina R2U-Net's inference
//! batch (batch 32): each block's projection and the output head, as
//! `kernels::conv::pointwise_forward` runs them (best of five):
//!
//! ```sh
//! cargo run --release -p r2unet --example pointwise_passes
//! ```

use std::time::Instant;

use r2unet::kernels::{Maps, conv};

fn main() {
    println!("threads {}", rayon::current_num_threads());
    let mut total = 0.0;
    for (cin, cout, s) in [
        (1usize, 16usize, 48usize),
        (16, 32, 24),
        (32, 64, 12),
        (64, 128, 6),
        (128, 64, 12),
        (64, 32, 24),
        (32, 16, 48),
        (16, 1, 48),
    ] {
        let m = Maps {
            batch: 32,
            channels: cin,
            height: s,
            width: s,
        };
        let x: Vec<f32> = (0..m.len()).map(|i| (i % 7) as f32 * 0.1).collect();
        let w: Vec<f32> = (0..cin * cout).map(|i| (i % 5) as f32 * 0.01).collect();
        let b = vec![0.1f32; cout];
        let flops = 2.0 * (m.len() * cout) as f64;
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t0 = Instant::now();
            drop(std::hint::black_box(conv::pointwise_forward(
                &x,
                m,
                &w,
                cout,
                Some(&b),
            )));
            best = best.min(t0.elapsed().as_secs_f64());
        }
        total += best;
        println!(
            "{cin:3} -> {cout:3}, {s:2}x{s:2}: {:6.3} ms {:6.1} GFLOP/s",
            best * 1e3,
            flops / best / 1e9
        );
    }
    println!("all: {:.3} ms", total * 1e3);
}
