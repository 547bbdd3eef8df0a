//! The 3x3 convolution's forward pass (and with it the input gradient) and
//! weight gradient on Intel's AMX tiles: operands rounded to bfloat16,
//! products summed in f32 (`tdpbf16ps`), for `--precision bf16` on
//! processors with AMX-BF16 (Xeon since Sapphire Rapids). One `tdpbf16ps` multiplies a 16x32 block of weights by a 32x16
//! block of inputs, 8,192 multiply-adds, where an AVX-512 multiply-add does
//! 16: on the 2-core Xeon of BENCHMARKS.md the tiles reach about 690
//! GFLOP/s on one core against about 250 for the f32 register tiles.
//!
//! Written by hand in inline assembly: Rust's AMX intrinsics are unstable
//! (nightly only) and no maintained crate offers tile operations. Linux
//! only: a process must ask the kernel for the tile state
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM)`) before its first tile instruction.
//!
//! The forward pass is the convolution as a matrix product without a copied
//! `im2col` panel. The input is rewritten once per call as bf16 *pairs* (two
//! consecutive input channels in one 32-bit word: the operand layout
//! `tdpbf16ps` wants), each pair of channels a zero-padded plane of
//! `(H + 2) x (W + 2)` positions. Output position `q = y * (W + 2) + x` reads
//! tap `(ky, kx)` of every channel at `q + ky * (W + 2) + kx`, so 16
//! consecutive positions of 16 channel pairs are one tile load with the
//! plane length as its stride, whatever the image's width; the two padding
//! columns of each row are computed and dropped. Weights are packed per
//! call into 16 output channels x 16 channel pairs blocks, tap by tap. The
//! weight gradient: [`weight_grad`].

use std::arch::asm;
use std::sync::OnceLock;

use rayon::prelude::*;

use super::conv::Activation;
use super::tile::to_bf16;
use super::{Disjoint, Maps};

/// Whether the AMX path can run: AMX-TILE and AMX-BF16 reported by the CPU,
/// AVX-512 not capped by `R2UNET_ISA` (`R2UNET_ISA=avx512` keeps AVX-512
/// but not AMX, to compare the two), and the tile state granted by the
/// kernel. Asked once.
pub fn available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| super::tile::amx_allowed() && cpu_has_amx() && tile_state_granted())
}

/// Whether [`forward`] takes this many input channels: a whole number of
/// blocks of 8 channel pairs.
pub fn takes(in_channels: usize) -> bool {
    in_channels > 0 && in_channels.is_multiple_of(16)
}

fn cpu_has_amx() -> bool {
    // CPUID leaf 7, sub-leaf 0: EDX bit 22 AMX-BF16, bit 24 AMX-TILE.
    // (Leaf 7 exists on every processor with AVX-512, which `amx_allowed`
    // checked first.)
    let edx = std::arch::x86_64::__cpuid_count(7, 0).edx;
    edx & (1 << 22) != 0 && edx & (1 << 24) != 0
}

#[cfg(target_os = "linux")]
fn tile_state_granted() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with this request only changes which extended
    // states the process may use; it reads and writes no memory of ours.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn tile_state_granted() -> bool {
    false
}

/// [`conv::forward`](super::conv::forward) with inputs and weights rounded
/// to bf16 ([`to_bf16`]) and the products summed in f32 on AMX tiles:
/// `out[b, o] = act(bias[o] + sum over c, taps of w * x)`, `[batch,
/// out_channels, H, W]`.
///
/// # Panics
///
/// Without [`available`]; unless [`takes`] the input channels; if the
/// lengths do not match the shapes.
pub fn forward(
    input: &[f32],
    maps: Maps,
    weight: &[f32],
    out_channels: usize,
    bias: Option<&[f32]>,
    act: Activation,
) -> Vec<f32> {
    check_input(input, maps);
    assert_eq!(weight.len(), out_channels * maps.channels * 9, "3x3 weight");
    if let Some(bias) = bias {
        assert_eq!(bias.len(), out_channels, "bias");
    }
    if maps.batch * out_channels * maps.pixels() == 0 {
        return Vec::new();
    }
    let plan = Plan::new(maps, out_channels);
    plan.run(&plan.pair_planes(input), weight, bias, act)
}

/// A recurrent convolutional layer in inference: `x1 = relu(conv_0(x))`,
/// then `x1 = relu(conv_k(x + x1))` for each further step `k`, with
/// `layers[k] = (weight, bias)` (the step's batch norm folded in), every
/// step keeping the `C` channels of `x`. Each step but the last writes its
/// output straight from the tiles as the next step's input, bf16 pairs of
/// `x + relu(...)`: the sum is never written in f32 nor converted in a pass
/// of its own, and the values are those of the steps one by one
/// ([`forward`] of `x + x1`, the sum in f32).
///
/// # Panics
///
/// As [`forward`]; without a step; if a step's weight is not
/// `[C, C, 3, 3]` or its bias not `[C]`.
pub fn recurrent_relu(x: &[f32], maps: Maps, layers: &[(&[f32], &[f32])]) -> Vec<f32> {
    let c = maps.channels;
    let Some(((last_weight, last_bias), between)) = layers.split_last() else {
        panic!("a recurrent layer of at least one step");
    };
    check_input(x, maps);
    for (weight, bias) in layers {
        assert_eq!(weight.len(), c * c * 9, "a recurrent step's 3x3 weight");
        assert_eq!(bias.len(), c, "a recurrent step's bias");
    }
    if maps.is_empty() {
        return Vec::new();
    }
    let plan = Plan::new(maps, c);
    let mut pairs = plan.pair_planes(x);
    for (weight, bias) in between {
        let mut next = Vec::with_capacity(pairs.len());
        let dst = Disjoint::new(&mut next);
        // SAFETY: jobs cover every (image, row) once, so their parts are
        // disjoint and together fill every plane (`write_pairs`).
        plan.each_job(&pairs, weight, |job, tmp| unsafe {
            plan.write_pairs(tmp, job, bias, x, &dst)
        });
        // SAFETY: every plane was written whole above.
        unsafe { next.set_len(pairs.len()) };
        pairs = next;
    }
    plan.run(&pairs, last_weight, Some(last_bias), Activation::Relu)
}

/// The checks every AMX pass makes of its input.
fn check_input(input: &[f32], maps: Maps) {
    assert!(
        available(),
        "the AMX convolution needs AMX-BF16 and its tile state"
    );
    assert!(takes(maps.channels), "AMX: input channels in 16s");
    assert_eq!(input.len(), maps.len(), "input of {maps:?}");
}

/// Channel pairs per tile row block: 16 (a full 64-byte tile row) where the
/// pairs come in 16s, else 8.
fn pairs_per_step(pairs: usize) -> usize {
    if pairs.is_multiple_of(16) { 16 } else { 8 }
}

/// Output values per job's temporary products (1 MiB of f32): rows of an
/// image are split into bands that keep it near the second-level cache.
const JOB_VALUES: usize = 1 << 18;

/// The sizes of one call.
struct Plan {
    maps: Maps,
    out_channels: usize,
    /// Padded row length `W + 2`.
    wp: usize,
    /// Length of one pair plane: `(H + 2) x (W + 2)` and the slack the last
    /// block of positions reads past it.
    plane: usize,
    /// Channel pairs, and pairs per step of the sum.
    pairs: usize,
    step_pairs: usize,
    /// Steps of the sum: 9 taps x blocks of `step_pairs` pairs.
    steps: usize,
    /// Output-channel tiles per block (2, or 1 where there are at most 16
    /// channels) and position tiles per block (2, or 3 with one channel tile).
    mt: usize,
    nt: usize,
    /// Output channels rounded up to `16 * mt`.
    out_padded: usize,
    /// Image rows per job.
    rows: usize,
}

/// One job: rows `y0..y1` of image `b`.
#[derive(Clone, Copy)]
struct Job {
    b: usize,
    y0: usize,
    y1: usize,
}

impl Plan {
    fn new(maps: Maps, out_channels: usize) -> Self {
        let (h, w) = (maps.height, maps.width);
        let wp = w + 2;
        let pairs = maps.channels / 2;
        let step_pairs = pairs_per_step(pairs);
        let mt = if out_channels > 16 { 2 } else { 1 };
        let nt = if mt == 2 { 2 } else { 3 };
        let out_padded = out_channels.next_multiple_of(16 * mt);
        let plane = ((h + 2) * wp + 16 * nt + 16).next_multiple_of(16);
        let mut rows = (JOB_VALUES / (out_padded * wp)).clamp(1, h);
        // Fewer images than four jobs per thread: split their rows.
        let threads = rayon::current_num_threads();
        let per_image = (4 * threads).div_ceil(maps.batch);
        if per_image > 1 {
            rows = rows.min(h.div_ceil(per_image));
        }
        Plan {
            maps,
            out_channels,
            wp,
            plane,
            pairs,
            step_pairs,
            steps: 9 * pairs / step_pairs,
            mt,
            nt,
            out_padded,
            rows,
        }
    }

    fn jobs(&self) -> Vec<Job> {
        let h = self.maps.height;
        (0..self.maps.batch)
            .flat_map(|b| {
                (0..h).step_by(self.rows).map(move |y0| Job {
                    b,
                    y0,
                    y1: (y0 + self.rows).min(h),
                })
            })
            .collect()
    }

    /// Positions a job computes: its rows of padded width, rounded up to a
    /// whole block of `16 * nt`.
    fn job_positions(&self, job: Job) -> usize {
        ((job.y1 - job.y0) * self.wp).next_multiple_of(16 * self.nt)
    }

    /// The convolution of `pairs` (as [`Plan::pair_planes`] writes them)
    /// in f32, `[batch, out_channels, H, W]`.
    fn run(
        &self,
        pairs: &[u32],
        weight: &[f32],
        bias: Option<&[f32]>,
        act: Activation,
    ) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.maps.batch * self.out_channels * self.maps.pixels());
        let dst = Disjoint::new(&mut out);
        // SAFETY: jobs cover every (image, row) once, so their writes are
        // disjoint and together fill `out`'s capacity.
        self.each_job(pairs, weight, |job, tmp| unsafe {
            self.write(tmp, job, bias, act, &dst)
        });
        // SAFETY: every element was written above.
        unsafe { out.set_len(out.capacity()) };
        out
    }

    /// `write(job, sums)` for every job, in parallel, with the job's sums
    /// of `weight` over `pairs` ([`Plan::products`]).
    fn each_job(&self, pairs: &[u32], weight: &[f32], write: impl Fn(Job, &[f32]) + Sync) {
        let packed = self.pack(weight);
        self.jobs().into_par_iter().for_each(|job| {
            write(job, &self.products(pairs, &packed, job));
        });
    }

    /// The input as bf16 pairs, `[batch][pair][plane]`: pair `p` holds
    /// channels `2p` (low half) and `2p + 1`, at padded position
    /// `(y + 1) * wp + x + 1`, zero around and past the image.
    fn pair_planes(&self, input: &[f32]) -> Vec<u32> {
        let (h, w) = (self.maps.height, self.maps.width);
        let pixels = self.maps.pixels();
        let len = self.maps.batch * self.pairs * self.plane;
        // Each plane is written whole below (a zeroed buffer first cost a
        // pass over memory: 9% of an inference batch).
        let mut planes = Vec::with_capacity(len);
        planes.spare_capacity_mut()[..len]
            .par_chunks_mut(self.plane)
            .enumerate()
            .for_each(|(bp, plane)| {
                let lo = &input[2 * bp * pixels..][..pixels];
                let hi = &input[(2 * bp + 1) * pixels..][..pixels];
                self.plane_rows(plane, 0..h, |y, row| {
                    pair_row(row, &lo[y * w..][..w], &hi[y * w..][..w]);
                });
            });
        // SAFETY: every plane was written whole above.
        unsafe { planes.set_len(len) };
        planes
    }

    /// The weight as tile blocks: `[out tile][step][16 channels][step_pairs]`
    /// pairs, step `s` being tap `s / blocks`, pairs block `s % blocks`;
    /// zero past the last output channel.
    fn pack(&self, weight: &[f32]) -> Vec<u32> {
        let (c, sp) = (self.maps.channels, self.step_pairs);
        let blocks = self.pairs / sp;
        let mut packed = vec![0u32; self.out_padded / 16 * self.steps * 16 * sp];
        let mut i = 0;
        for ot in 0..self.out_padded / 16 {
            for s in 0..self.steps {
                let (tap, block) = (s / blocks, s % blocks);
                for o in ot * 16..ot * 16 + 16 {
                    if o < self.out_channels {
                        let filters = &weight[o * c * 9..][..c * 9];
                        for r in 0..sp {
                            let ch = 2 * (block * sp + r);
                            packed[i + r] = pair(filters[ch * 9 + tap], filters[ch * 9 + 9 + tap]);
                        }
                    }
                    i += sp;
                }
            }
        }
        packed
    }

    /// The job's sums without bias, `[out_padded][job_positions]`, position
    /// `i` being padded position `y0 * wp + i`.
    fn products(&self, planes: &[u32], packed: &[u32], job: Job) -> Vec<f32> {
        let n = self.job_positions(job);
        // Every value is stored by a tile below (a zeroed buffer first cost
        // a pass over it).
        let mut tmp: Vec<f32> = Vec::with_capacity(self.out_padded * n);
        let image = &planes[job.b * self.pairs * self.plane..][..self.pairs * self.plane];
        let q0 = job.y0 * self.wp;
        // Every load reads at most position q0 + n - 1 + 2 * wp + 2 of a
        // plane: within `plane` by its slack.
        assert!(q0 + n + 2 * self.wp + 2 <= self.plane, "AMX plane slack");
        let blocks = self.pairs / self.step_pairs;
        let a_step = 16 * self.step_pairs;
        let config = TileConfig::new(self.mt, self.nt, self.step_pairs);
        let sums = tmp.as_mut_ptr();
        // SAFETY: AMX is available (asserted in `forward`); every pointer
        // below is checked against its buffer: weight blocks lie in
        // `packed` (out tile < out_padded / 16, s < steps), input rows in
        // `image` (pair < pairs, position < plane as asserted), and stores
        // in `tmp` (16 rows of n per output tile, columns < n).
        unsafe {
            config.load();
            for ot in (0..self.out_padded / 16).step_by(self.mt) {
                for col in (0..n).step_by(16 * self.nt) {
                    let a = |t: usize, s: usize| {
                        packed.as_ptr().add(((ot + t) * self.steps + s) * a_step)
                    };
                    let b = |t: usize, s: usize| {
                        let (tap, block) = (s / blocks, s % blocks);
                        let offset = tap / 3 * self.wp + tap % 3;
                        image
                            .as_ptr()
                            .add(block * self.step_pairs * self.plane + q0 + col + 16 * t + offset)
                    };
                    let c = |mt: usize, t: usize| sums.add((ot + mt) * 16 * n + col + 16 * t);
                    let (sa, sb, sc) = (4 * self.step_pairs, 4 * self.plane, 4 * n);
                    if self.mt == 2 {
                        asm!(
                            "tilezero tmm0",
                            "tilezero tmm1",
                            "tilezero tmm2",
                            "tilezero tmm3"
                        );
                        for s in 0..self.steps {
                            asm!(
                                "tileloadd tmm4, [{a0} + {sa}*1]",
                                "tileloadd tmm5, [{a1} + {sa}*1]",
                                "tileloadd tmm6, [{b0} + {sb}*1]",
                                "tileloadd tmm7, [{b1} + {sb}*1]",
                                "tdpbf16ps tmm0, tmm4, tmm6",
                                "tdpbf16ps tmm1, tmm4, tmm7",
                                "tdpbf16ps tmm2, tmm5, tmm6",
                                "tdpbf16ps tmm3, tmm5, tmm7",
                                a0 = in(reg) a(0, s), a1 = in(reg) a(1, s),
                                b0 = in(reg) b(0, s), b1 = in(reg) b(1, s),
                                sa = in(reg) sa, sb = in(reg) sb,
                                options(nostack, readonly),
                            );
                        }
                        asm!(
                            "tilestored [{c0} + {sc}*1], tmm0",
                            "tilestored [{c1} + {sc}*1], tmm1",
                            "tilestored [{c2} + {sc}*1], tmm2",
                            "tilestored [{c3} + {sc}*1], tmm3",
                            c0 = in(reg) c(0, 0), c1 = in(reg) c(0, 1),
                            c2 = in(reg) c(1, 0), c3 = in(reg) c(1, 1),
                            sc = in(reg) sc,
                            options(nostack),
                        );
                    } else {
                        asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2");
                        for s in 0..self.steps {
                            asm!(
                                "tileloadd tmm3, [{a0} + {sa}*1]",
                                "tileloadd tmm4, [{b0} + {sb}*1]",
                                "tileloadd tmm5, [{b1} + {sb}*1]",
                                "tileloadd tmm6, [{b2} + {sb}*1]",
                                "tdpbf16ps tmm0, tmm3, tmm4",
                                "tdpbf16ps tmm1, tmm3, tmm5",
                                "tdpbf16ps tmm2, tmm3, tmm6",
                                a0 = in(reg) a(0, s),
                                b0 = in(reg) b(0, s), b1 = in(reg) b(1, s), b2 = in(reg) b(2, s),
                                sa = in(reg) sa, sb = in(reg) sb,
                                options(nostack, readonly),
                            );
                        }
                        asm!(
                            "tilestored [{c0} + {sc}*1], tmm0",
                            "tilestored [{c1} + {sc}*1], tmm1",
                            "tilestored [{c2} + {sc}*1], tmm2",
                            c0 = in(reg) c(0, 0), c1 = in(reg) c(0, 1), c2 = in(reg) c(0, 2),
                            sc = in(reg) sc,
                            options(nostack),
                        );
                    }
                }
            }
            asm!("tilerelease", options(nostack, nomem));
            // The tiles stored 16 rows of every 16 columns of `n` for each
            // of the out_padded / 16 output tiles.
            tmp.set_len(self.out_padded * n);
        }
        tmp
    }

    /// Writes the job's rows of every output channel: bias and activation
    /// applied, padding columns dropped.
    ///
    /// # Safety
    ///
    /// `dst` must point to the `[batch, out_channels, H, W]` output, and no
    /// other thread may write this job's rows.
    unsafe fn write(
        &self,
        tmp: &[f32],
        job: Job,
        bias: Option<&[f32]>,
        act: Activation,
        dst: &Disjoint<f32>,
    ) {
        let (h, w) = (self.maps.height, self.maps.width);
        let n = self.job_positions(job);
        for o in 0..self.out_channels {
            let add = bias.map_or(0.0, |b| b[o]);
            for y in job.y0..job.y1 {
                let src = &tmp[o * n + (y - job.y0) * self.wp..][..w];
                // SAFETY: row y of channel o of image b lies inside the
                // output, and only this job writes it (the caller's promise).
                let row = unsafe { dst.part(((job.b * self.out_channels + o) * h + y) * w, w) };
                for (d, &s) in row.iter_mut().zip(src) {
                    d.write(act.apply(s + add));
                }
            }
        }
    }

    /// The next recurrent step's input from a job's sums: bf16 pairs
    /// (layout of [`Plan::pair_planes`]) of `residual + relu(sums + bias)`,
    /// `residual` being the layer's input (`[batch, C, H, W]`, C =
    /// `out_channels`), for the job's rows with their padding columns, and
    /// the padding above the image (the first rows' job) or below it (the
    /// last rows').
    ///
    /// # Safety
    ///
    /// `dst` must hold `batch * pairs * plane` values, and no other job may
    /// write the same image's rows.
    unsafe fn write_pairs(
        &self,
        tmp: &[f32],
        job: Job,
        bias: &[f32],
        residual: &[f32],
        dst: &Disjoint<u32>,
    ) {
        let (h, w, wp) = (self.maps.height, self.maps.width, self.wp);
        let n = self.job_positions(job);
        let (start, end) = self.rows_part(job.y0..job.y1);
        for p in 0..self.pairs {
            // SAFETY: plane p of image b lies inside `dst` (the caller's
            // promise), and this job's part of it is no other job's.
            let part =
                unsafe { dst.part((job.b * self.pairs + p) * self.plane + start, end - start) };
            let (lo, hi) = (2 * p, 2 * p + 1);
            self.plane_rows(part, job.y0..job.y1, |y, row| {
                let sums = |o: usize| &tmp[o * n + (y - job.y0) * wp..][..w];
                let input =
                    |o: usize| &residual[((job.b * self.out_channels + o) * h + y) * w..][..w];
                step_row(
                    row,
                    [sums(lo), sums(hi)],
                    [bias[lo], bias[hi]],
                    [input(lo), input(hi)],
                );
            });
        }
    }

    /// The part of a pair plane (layout of [`Plan::pair_planes`]) that
    /// [`Plan::plane_rows`] writes for image rows `rows`: from the row's
    /// left padding (the plane's start for the first row) up to the next
    /// part (the plane's end after the last row). The parts of a split of
    /// the rows are disjoint and cover the plane.
    fn rows_part(&self, rows: std::ops::Range<usize>) -> (usize, usize) {
        let at = |y: usize| match y {
            0 => 0,
            y if y == self.maps.height => self.plane,
            y => (y + 1) * self.wp + 1,
        };
        (at(rows.start), at(rows.end))
    }

    /// Rows `rows` of one pair plane, `part` being their [`Plan::rows_part`]:
    /// `write_row(y, values)` fills image row `y`'s `W` values, and the
    /// padding is zeroed around them — each row's right padding with the
    /// next row's left, the rows above the image with the first row and
    /// the rows below it, with the slack past them, with the last.
    fn plane_rows(
        &self,
        part: &mut [std::mem::MaybeUninit<u32>],
        rows: std::ops::Range<usize>,
        mut write_row: impl FnMut(usize, &mut [std::mem::MaybeUninit<u32>]),
    ) {
        let (h, w, wp) = (self.maps.height, self.maps.width, self.wp);
        let zero = std::mem::MaybeUninit::new(0u32);
        // Plane position `q` is `part[q - start]`.
        let (start, end) = self.rows_part(rows.clone());
        debug_assert_eq!(part.len(), end - start, "the rows' part of the plane");
        if rows.start == 0 {
            part[..wp + 1].fill(zero);
        }
        for y in rows.clone() {
            let row = &mut part[(y + 1) * wp + 1 - start..][..wp];
            write_row(y, &mut row[..w]);
            row[w..].fill(zero);
        }
        if rows.end == h {
            part[(h + 1) * wp + 1 - start..].fill(zero);
        }
    }
}

/// The weight gradient of [`forward`]'s convolution (`[out_channels, C, 3,
/// 3]`, no bias) with `input` and `grad_out` rounded to bf16 and the
/// products summed in f32: `dW[o, c, ky, kx] = sum over b, y, x of
/// grad_out[b, o, y, x] * input[b, c, y + ky - 1, x + kx - 1]` (zero outside
/// the image), for `train --precision bf16`.
///
/// As a tile product it is `C[c][o] = sum over positions q of x[c][q +
/// tap] * g[o][q]`, the sum running over every position of the batch:
/// positions `q = image * (H + 2)(W + 2) + y * (W + 2) + x` of the padded
/// grids laid end to end, the gradient zero at padding positions. Weight
/// tiles need no copy: 16 channels x 32 consecutive positions of the
/// padded bf16 input planes, read at the tap's offset. Gradient tiles are
/// pairs of consecutive positions by output channel, so the gradient is
/// transposed once per call. Each job, a tap and a block of up to 32 x 32
/// channels, sums the whole batch in one order: the result does not depend
/// on the thread count.
///
/// # Panics
///
/// Without [`available`]; unless [`takes`] the input channels; if the
/// lengths do not match the shapes.
pub fn weight_grad(input: &[f32], maps: Maps, grad_out: &[f32], out_channels: usize) -> Vec<f32> {
    assert!(
        available(),
        "the AMX convolution needs AMX-BF16 and its tile state"
    );
    assert!(takes(maps.channels), "AMX: input channels in 16s");
    assert_eq!(input.len(), maps.len(), "input of {maps:?}");
    assert_eq!(
        grad_out.len(),
        maps.batch * out_channels * maps.pixels(),
        "gradient"
    );
    let (ci, h, w) = (maps.channels, maps.height, maps.width);
    let mut dw = vec![0.0f32; out_channels * ci * 9];
    if maps.batch * maps.pixels() == 0 || out_channels == 0 {
        return dw;
    }
    let wp = w + 2;
    let grid = (h + 2) * wp;
    let positions = (maps.batch * grid).next_multiple_of(32);
    let x_len = (positions + 2 * wp + 2).next_multiple_of(32);
    let out_padded = out_channels.next_multiple_of(16);
    // The input and the gradient as bf16 planes on the padded grids.
    // Each plane is written whole, padding included (zeroed buffers first
    // were 8% of a bf16 training step).
    let planes = |values: &[f32], channels: usize, len: usize, shift: usize| {
        let mut planes = Vec::with_capacity(channels * len);
        let zero = std::mem::MaybeUninit::new(0u16);
        planes.spare_capacity_mut()[..channels * len]
            .par_chunks_mut(len)
            .enumerate()
            .for_each(|(c, plane)| {
                let mut written = 0;
                for b in 0..maps.batch {
                    let image = &values[(b * channels + c) * h * w..][..h * w];
                    for y in 0..h {
                        let at = b * grid + (y + shift) * wp + shift;
                        plane[written..at].fill(zero);
                        bf16_row(&mut plane[at..at + w], &image[y * w..][..w]);
                        written = at + w;
                    }
                }
                plane[written..].fill(zero);
            });
        // SAFETY: every plane was written whole above.
        unsafe { planes.set_len(channels * len) };
        planes
    };
    let x = planes(input, ci, x_len, 1);
    let g = planes(grad_out, out_channels, positions, 0);
    // The gradient as pairs of consecutive positions by output channel.
    let pairs = positions / 2;
    let mut gt = Vec::with_capacity(pairs * out_padded);
    gt.spare_capacity_mut()[..pairs * out_padded]
        .par_chunks_mut(16 * out_padded)
        .enumerate()
        .for_each(|(block, rows)| {
            for o in 0..out_channels {
                let plane = &g[o * positions + 32 * block..][..32];
                for (p, row) in rows.chunks_exact_mut(out_padded).enumerate() {
                    let pair = u32::from(plane[2 * p]) | (u32::from(plane[2 * p + 1]) << 16);
                    row[o] = std::mem::MaybeUninit::new(pair);
                }
            }
            for row in rows.chunks_exact_mut(out_padded) {
                row[out_channels..].fill(std::mem::MaybeUninit::new(0));
            }
        });
    // SAFETY: every row was written whole above (channels, then padding).
    unsafe { gt.set_len(pairs * out_padded) };
    let jobs: Vec<(usize, usize, usize)> = (0..9)
        .flat_map(|t| {
            (0..ci / 16)
                .step_by(2)
                .flat_map(move |cb| (0..out_padded / 16).step_by(2).map(move |ob| (t, cb, ob)))
        })
        .collect();
    let sums: Vec<[[f32; 16 * 16]; 4]> = jobs
        .par_iter()
        .map(|&(t, cb, ob)| {
            let mt = (ci / 16 - cb).min(2);
            let nt = (out_padded / 16 - ob).min(2);
            let offset = t / 3 * wp + t % 3;
            let mut out = [[0.0f32; 256]; 4];
            let config = TileConfig::new(2, 2, 16);
            // SAFETY: AMX is available (asserted). Input tiles read 16 rows
            // of 32 values at (cb + m) * 16 + r < ci planes of x_len, from
            // position k + offset, k + 31 + offset < positions + 2 * wp + 2
            // <= x_len; gradient tiles 16 rows of pairs k / 2 + r < pairs,
            // columns (ob + n) * 16 + 16 <= out_padded; stores 16 rows of
            // 16 values into `out`.
            unsafe {
                config.load();
                for c in 0..mt * nt {
                    zero(c);
                }
                for k in (0..positions).step_by(32) {
                    for m in 0..mt {
                        let a = x.as_ptr().add((cb + m) * 16 * x_len + k + offset);
                        load(4 + m, a.cast(), 2 * x_len);
                    }
                    for n in 0..nt {
                        let b = gt.as_ptr().add(k / 2 * out_padded + (ob + n) * 16);
                        load(6 + n, b.cast(), 4 * out_padded);
                    }
                    for m in 0..mt {
                        for n in 0..nt {
                            product(2 * m + n);
                        }
                    }
                }
                for (c, tile) in out.iter_mut().enumerate().take(mt * 2) {
                    if c % 2 < nt {
                        store(c, tile.as_mut_ptr().cast(), 64);
                    }
                }
                asm!("tilerelease", options(nostack, nomem));
            }
            out
        })
        .collect();
    for (&(t, cb, ob), tiles) in jobs.iter().zip(&sums) {
        for (i, tile) in tiles.iter().enumerate() {
            let (c0, o0) = ((cb + i / 2) * 16, (ob + i % 2) * 16);
            for (r, row) in tile.chunks_exact(16).enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    let (c, o) = (c0 + r, o0 + j);
                    if c < ci && o < out_channels {
                        dw[(o * ci + c) * 9 + t] = v;
                    }
                }
            }
        }
    }
    dw
}

/// `tileloadd tmm{tile}` from `at`, rows `stride` bytes apart.
///
/// # Safety
///
/// Tiles configured; the tile's rows must lie in readable memory.
#[inline(always)]
unsafe fn load(tile: usize, at: *const u8, stride: usize) {
    // SAFETY: the caller's promise.
    unsafe {
        match tile {
            4 => {
                asm!("tileloadd tmm4, [{} + {}*1]", in(reg) at, in(reg) stride, options(nostack, readonly))
            }
            5 => {
                asm!("tileloadd tmm5, [{} + {}*1]", in(reg) at, in(reg) stride, options(nostack, readonly))
            }
            6 => {
                asm!("tileloadd tmm6, [{} + {}*1]", in(reg) at, in(reg) stride, options(nostack, readonly))
            }
            7 => {
                asm!("tileloadd tmm7, [{} + {}*1]", in(reg) at, in(reg) stride, options(nostack, readonly))
            }
            _ => unreachable!("operand tiles are 4-7"),
        }
    }
}

/// `tdpbf16ps` into sum tile `c` (0-3) from operand tiles `4 + c / 2` and
/// `6 + c % 2`.
///
/// # Safety
///
/// Tiles configured and loaded.
#[inline(always)]
unsafe fn product(c: usize) {
    // SAFETY: the caller's promise; no memory is touched.
    unsafe {
        match c {
            0 => asm!("tdpbf16ps tmm0, tmm4, tmm6", options(nostack, nomem)),
            1 => asm!("tdpbf16ps tmm1, tmm4, tmm7", options(nostack, nomem)),
            2 => asm!("tdpbf16ps tmm2, tmm5, tmm6", options(nostack, nomem)),
            3 => asm!("tdpbf16ps tmm3, tmm5, tmm7", options(nostack, nomem)),
            _ => unreachable!("sum tiles are 0-3"),
        }
    }
}

/// `tilezero tmm{c}` (0-3).
///
/// # Safety
///
/// Tiles configured.
#[inline(always)]
unsafe fn zero(c: usize) {
    // SAFETY: the caller's promise; no memory is touched.
    unsafe {
        match c {
            0 => asm!("tilezero tmm0", options(nostack, nomem)),
            1 => asm!("tilezero tmm1", options(nostack, nomem)),
            2 => asm!("tilezero tmm2", options(nostack, nomem)),
            3 => asm!("tilezero tmm3", options(nostack, nomem)),
            _ => unreachable!("sum tiles are 0-3"),
        }
    }
}

/// `tilestored` of sum tile `c` (0-3) to `at`, rows `stride` bytes apart.
///
/// # Safety
///
/// Tiles configured; 16 rows of 64 bytes at `at` must be writable.
#[inline(always)]
unsafe fn store(c: usize, at: *mut u8, stride: usize) {
    // SAFETY: the caller's promise.
    unsafe {
        match c {
            0 => asm!("tilestored [{} + {}*1], tmm0", in(reg) at, in(reg) stride, options(nostack)),
            1 => asm!("tilestored [{} + {}*1], tmm1", in(reg) at, in(reg) stride, options(nostack)),
            2 => asm!("tilestored [{} + {}*1], tmm2", in(reg) at, in(reg) stride, options(nostack)),
            3 => asm!("tilestored [{} + {}*1], tmm3", in(reg) at, in(reg) stride, options(nostack)),
            _ => unreachable!("sum tiles are 0-3"),
        }
    }
}

/// `row[i] = to_bf16(src[i])`, compiled for AVX-512.
fn bf16_row(row: &mut [std::mem::MaybeUninit<u16>], src: &[f32]) {
    #[target_feature(enable = "avx512f,avx512bw")]
    // SAFETY (of the call below): AVX-512 F and BW are present wherever
    // AMX is.
    unsafe fn wide(row: &mut [std::mem::MaybeUninit<u16>], src: &[f32]) {
        for (r, &v) in row.iter_mut().zip(src) {
            *r = std::mem::MaybeUninit::new(to_bf16(v));
        }
    }
    // SAFETY: see `wide`.
    unsafe { wide(row, src) }
}

/// Two values as one bf16 pair, `lo` in the low half.
#[inline(always)]
fn pair(lo: f32, hi: f32) -> u32 {
    u32::from(to_bf16(lo)) | (u32::from(to_bf16(hi)) << 16)
}

/// `row[i] = pair(lo[i], hi[i])`, compiled for AVX-512 so that the
/// rounding runs 16 lanes at a time.
fn pair_row(row: &mut [std::mem::MaybeUninit<u32>], lo: &[f32], hi: &[f32]) {
    #[target_feature(enable = "avx512f,avx512bw")]
    // SAFETY (of the call below): AVX-512 F is present wherever AMX is, and
    // BW on every AVX-512 processor with AMX.
    unsafe fn wide(row: &mut [std::mem::MaybeUninit<u32>], lo: &[f32], hi: &[f32]) {
        for ((r, &l), &h) in row.iter_mut().zip(lo).zip(hi) {
            *r = std::mem::MaybeUninit::new(pair(l, h));
        }
    }
    // SAFETY: see `wide`.
    unsafe { wide(row, lo, hi) }
}

/// `row[i] = pair(x[0][i] + relu(s[0][i] + b[0]), x[1][i] + relu(s[1][i] + b[1]))`:
/// two channels of a recurrent step's output added to the layer's input, in
/// the order and rounding of the output written in f32 ([`Plan::write`])
/// and then summed, compiled for AVX-512.
fn step_row(row: &mut [std::mem::MaybeUninit<u32>], s: [&[f32]; 2], b: [f32; 2], x: [&[f32]; 2]) {
    #[target_feature(enable = "avx512f,avx512bw")]
    // SAFETY (of the call below): as `pair_row`.
    unsafe fn wide(
        row: &mut [std::mem::MaybeUninit<u32>],
        s: [&[f32]; 2],
        b: [f32; 2],
        x: [&[f32]; 2],
    ) {
        let relu = Activation::Relu;
        let sums = s[0].iter().zip(s[1]);
        let inputs = x[0].iter().zip(x[1]);
        for ((r, (&s0, &s1)), (&x0, &x1)) in row.iter_mut().zip(sums).zip(inputs) {
            let (lo, hi) = (x0 + relu.apply(s0 + b[0]), x1 + relu.apply(s1 + b[1]));
            *r = std::mem::MaybeUninit::new(pair(lo, hi));
        }
    }
    // SAFETY: see `wide`.
    unsafe { wide(row, s, b, x) }
}

/// The tile palette: `tmm0..tmm(mt * nt)` the sums (16 output channels x 16
/// positions of f32), then `mt` weight tiles (16 channels x `step_pairs`
/// pairs) and `nt` input tiles (`step_pairs` pairs x 16 positions).
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    bytes_per_row: [u16; 16],
    rows: [u8; 16],
}

impl TileConfig {
    fn new(mt: usize, nt: usize, step_pairs: usize) -> Self {
        let mut config = TileConfig {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            bytes_per_row: [0; 16],
            rows: [0; 16],
        };
        let sums = mt * nt;
        let mut set = |t: usize, rows: usize, bytes: usize| {
            config.rows[t] = rows as u8;
            config.bytes_per_row[t] = bytes as u16;
        };
        for t in 0..sums {
            set(t, 16, 64);
        }
        for t in sums..sums + mt {
            set(t, 16, 4 * step_pairs);
        }
        for t in sums + mt..sums + mt + nt {
            set(t, step_pairs, 64);
        }
        config
    }

    /// `ldtilecfg`: configures this thread's tiles.
    ///
    /// # Safety
    ///
    /// AMX must be available to the process.
    unsafe fn load(&self) {
        // SAFETY: a valid palette-1 configuration of 64 bytes.
        unsafe { asm!("ldtilecfg [{}]", in(reg) self as *const Self, options(nostack, readonly)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::reference::{self, maps, max_diff, values};

    fn rounded(v: &[f32]) -> Vec<f32> {
        v.iter()
            .map(|&x| f32::from_bits(u32::from(to_bf16(x)) << 16))
            .collect()
    }

    /// The AMX passes (forward, weight gradient) are the definitions on
    /// values rounded to bf16, up to the order of the f32 additions:
    /// channel counts in 16s and 32s, one and two output tiles with
    /// channels off the tiles, widths below, at and above a tile, an image
    /// split into bands of rows.
    #[test]
    fn amx_passes_are_the_definition_on_rounded_values() {
        if !available() {
            eprintln!("skipped: no AMX-BF16 tile state on this machine (or R2UNET_ISA caps it)");
            return;
        }
        let shapes = [
            (2, 16, 5, 7, 16),
            (3, 32, 6, 6, 24),
            (1, 48, 12, 17, 32),
            (2, 64, 9, 3, 40),
            (1, 128, 4, 4, 64),
            (1, 16, 70, 40, 256),
            (4, 32, 48, 48, 16),
        ];
        for (batch, channels, height, width, o) in shapes {
            let m = maps(batch, channels, height, width);
            let (x, wt, b) = (
                values(m.len(), 1),
                values(o * channels * 9, 2),
                values(o, 3),
            );
            let want = reference::forward(&rounded(&x), m, &rounded(&wt), o, &b);
            let got = forward(&x, m, &wt, o, Some(&b), Activation::Identity);
            let scale = want.iter().fold(1.0f32, |a, v| a.max(v.abs()));
            let d = max_diff(&got, &want);
            assert!(
                d < 1e-5 * scale * (channels as f32).sqrt(),
                "{m:?} -> {o}: {d}"
            );
            let relu = forward(&x, m, &wt, o, Some(&b), Activation::Relu);
            let g = values(batch * o * height * width, 4);
            let want_dw = reference::weight_grad(&rounded(&x), m, &rounded(&g), o);
            let got_dw = weight_grad(&x, m, &g, o);
            let scale = want_dw.iter().fold(1.0f32, |a, v| a.max(v.abs()));
            let d = max_diff(&got_dw, &want_dw);
            assert!(
                d < 1e-5 * scale * ((batch * height * width) as f32).sqrt(),
                "{m:?} -> {o}: weight gradient {d}"
            );
            // The same sums in the same order on one thread.
            let one = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap();
            assert_eq!(
                one.install(|| weight_grad(&x, m, &g, o)),
                got_dw,
                "{m:?}: one thread"
            );
            let want_relu: Vec<f32> = got.iter().map(|&v| v.max(0.0)).collect();
            assert_eq!(relu, want_relu, "{m:?}: ReLU");
            // A recurrent layer of three steps: bit for bit its steps one by
            // one, the sums in f32.
            let c = channels;
            let steps: Vec<(Vec<f32>, Vec<f32>)> = (0..3)
                .map(|k| (values(c * c * 9, 10 + k), values(c, 20 + k)))
                .collect();
            let layers: Vec<(&[f32], &[f32])> =
                steps.iter().map(|(w, b)| (&w[..], &b[..])).collect();
            let mut want = forward(&x, m, &steps[0].0, c, Some(&steps[0].1), Activation::Relu);
            for (w, b) in &steps[1..] {
                let sum: Vec<f32> = x.iter().zip(&want).map(|(a, b)| a + b).collect();
                want = forward(&sum, m, w, c, Some(b), Activation::Relu);
            }
            assert_eq!(
                recurrent_relu(&x, m, &layers),
                want,
                "{m:?}: recurrent layer"
            );
        }
    }
}
