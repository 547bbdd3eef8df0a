//! Throughput of the 3x3 convolution's passes at the retina R2U-Net's four
//! levels (C -> C channels, best of five), for a training batch of 32 48x48
//! patches and for one 576x576 image: the implementations of
//! the forward pass (Winograd's F(2x2, 3x3) and F(4x4, 3x3), the implicit
//! product on a padded copy) and of the weight gradient (F(2x2, 3x3) and
//! implicit; `kernels::conv` takes each from the input channels
//! `conv::winograd_from` gives for the instruction set),
//! the input gradient as `kernels::conv` runs it, and where the CPU has AMX
//! the bf16 forward pass on its tiles (`kernels::amx`, `--precision bf16`):
//!
//! ```sh
//! cargo run --release -p r2unet --example conv_passes
//! ```
//!
//! GFLOP/s count 2 FLOPs per multiply-add of a direct convolution, as
//! `r2unet bench` does; BENCHMARKS.md compares them with the machine's peak.

use std::time::Instant;

use r2unet::kernels::conv::Activation;
use r2unet::kernels::{Maps, conv, implicit, winograd, winograd4};

fn main() {
    println!("threads {}", rayon::current_num_threads());
    let patches = [(32, 16, 48), (32, 32, 24), (32, 64, 12), (32, 128, 6)];
    let image = [(1, 16, 576), (1, 32, 288), (1, 64, 144), (1, 128, 72)];
    for (batch, c, s) in patches.into_iter().chain(image) {
        let m = Maps {
            batch,
            channels: c,
            height: s,
            width: s,
        };
        let x: Vec<f32> = (0..m.len()).map(|i| (i % 7) as f32 * 0.1).collect();
        let w: Vec<f32> = (0..c * c * 9).map(|i| (i % 5) as f32 * 0.01).collect();
        let b = vec![0.1f32; c];
        let flops = 2.0 * (m.len() * c * 9) as f64;
        let mut best = [f64::MAX; 7];
        let mut time = |i: usize, f: &dyn Fn()| {
            let t0 = Instant::now();
            f();
            best[i] = best[i].min(t0.elapsed().as_secs_f64());
        };
        for _ in 0..5 {
            time(0, &|| {
                drop(std::hint::black_box(winograd::forward(
                    &x,
                    m,
                    &w,
                    c,
                    Some(&b),
                    Activation::Identity,
                    None,
                )))
            });
            time(1, &|| {
                drop(std::hint::black_box(implicit::forward(
                    &x,
                    m,
                    &w,
                    c,
                    Some(&b),
                    3,
                    Activation::Identity,
                )))
            });
            time(6, &|| {
                drop(std::hint::black_box(winograd4::forward(
                    &x,
                    m,
                    &w,
                    c,
                    Some(&b),
                    Activation::Identity,
                    None,
                )))
            });
            time(2, &|| {
                drop(std::hint::black_box(winograd::weight_grad(&x, m, &x, c)))
            });
            time(3, &|| {
                drop(std::hint::black_box(implicit::weight_grad(&x, m, &x, c, 3)))
            });
            time(4, &|| {
                drop(std::hint::black_box(conv::input_grad(&x, m, &w, c)))
            });
            #[cfg(target_arch = "x86_64")]
            if r2unet::kernels::amx::available() {
                time(5, &|| {
                    drop(std::hint::black_box(r2unet::kernels::amx::forward(
                        &x,
                        m,
                        &w,
                        c,
                        Some(&b),
                        Activation::Identity,
                    )))
                });
            }
        }
        let [wf, f, wdw, dw, dx, amx, wf4] =
            best.map(|t| format!("{:5.2} ms {:5.1}", t * 1e3, flops / t / 1e9));
        let amx = if best[5] < f64::MAX { amx } else { "-".into() };
        println!(
            "{batch:2} x C = {c:3}, {s:3}x{s:3} (ms, GFLOP/s): forward Winograd {wf} F(4x4) {wf4} implicit {f} | weight grad Winograd {wdw} implicit {dw} | input grad {dx} | bf16 AMX forward {amx}"
        );
    }
}
