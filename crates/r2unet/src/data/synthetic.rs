//! Synthetic fundus photographs with exact vessel labels, for tests and for a
//! demo that trains without downloading a dataset.
//!
//! Each image is a circular field of view with an orange-red fundus, uneven
//! illumination, choroidal texture, a bright optic disc, a darker macula and
//! several branching, tortuous vessel trees grown from the disc. Vessels are
//! drawn with soft edges and are darkest in green, as in real photographs; the
//! label is exact: a pixel is vessel iff its centre lies within half a
//! segment's width of the centreline (and inside the field of view).

use std::f32::consts::{FRAC_PI_2, TAU};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::dataset::Split;
use super::image::{Image, Mask};
use super::sample::{FovSource, Sample};
use crate::error::{Error, Result};

/// Images of the synthetic test split.
pub const TEST_IMAGES: usize = 6;
/// First seed of the synthetic test images (training uses seeds from
/// `seed * 1000` on, far below).
pub const TEST_SEED: u64 = 1 << 32;
/// Training images of the synthetic set unless a count is given (`train`
/// and `demo` default to it).
pub const TRAIN_IMAGES: usize = 12;

/// Short side (pixels) at which `vessel_width` is given; widths scale linearly
/// with the image so the vessel fraction does not depend on its size.
const REFERENCE_SIDE: f32 = 128.0;
/// Thinnest vessel (pixels at the reference side): thinner ones would leave
/// gaps in the label where no pixel centre falls inside them.
const THINNEST: f32 = 1.0;
/// How much darker a vessel is in R, G, B relative to its contrast: real
/// vessels are barely visible in red and clearest in green.
const CHANNEL_WEIGHT: [f32; 3] = [0.4, 1.0, 0.7];

/// Generator of synthetic retinas; `sample(seed)` is deterministic per seed.
#[derive(Debug, Clone)]
pub struct SyntheticRetina {
    /// Image width in pixels.
    pub width: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Number of vessel trees leaving the optic disc.
    pub trees: usize,
    /// Levels of branching: trunks leave the disc, their branches are level 1,
    /// and branches stop splitting at level `depth`.
    pub depth: usize,
    /// Standard deviation of the per-pixel noise, in `[0, 1]` intensity units.
    pub noise: f32,
    /// Width of a tree's root vessel, in pixels at a 128-pixel short side.
    pub vessel_width: f32,
}

impl Default for SyntheticRetina {
    /// 128 x 128, five trees with three levels of branches: fast enough for a
    /// CPU demo, with 12-16% vessel inside the field of view (DRIVE: ~12%).
    fn default() -> Self {
        Self {
            width: 128,
            height: 128,
            trees: 5,
            depth: 3,
            noise: 0.03,
            vessel_width: 2.8,
        }
    }
}

impl SyntheticRetina {
    /// The retina for `seed`: an RGB image in `[0, 1]`, its vessel label and
    /// its circular field of view (`FovSource::Given`).
    pub fn sample(&self, seed: u64) -> Sample {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let geo = Geometry::random(self, &mut rng);
        let strokes = grow_trees(self, &geo, &mut rng);
        let fov = fov_mask(self.width, self.height, &geo);
        let (darkness, label) = rasterize(&strokes, &fov);
        let image = compose(self, &geo, &darkness, &mut rng);
        Sample {
            id: format!("synthetic-{seed}"),
            image,
            label,
            fov,
            fov_source: FovSource::Given,
        }
    }

    /// `count` samples with seeds `first_seed, first_seed + 1, ...`.
    pub fn dataset(&self, count: usize, first_seed: u64) -> Vec<Sample> {
        (0..count as u64)
            .map(|i| self.sample(first_seed.wrapping_add(i)))
            .collect()
    }

    /// A split of the synthetic set: `train` is the `train_images` images a
    /// run with seed 0 trains on, `test` the [`TEST_IMAGES`] unseen ones.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for `val` and `all`, which the synthetic set lacks.
    pub fn split(&self, split: Split, train_images: usize) -> Result<Vec<Sample>> {
        match split {
            Split::Train => Ok(self.dataset(train_images, 0)),
            Split::Test => Ok(self.dataset(TEST_IMAGES, TEST_SEED)),
            Split::Val | Split::All => Err(Error::invalid(
                "the synthetic set",
                format!("has no `{split}` split: use train or test"),
            )),
        }
    }
}

type Point = [f32; 2];

/// Where the anatomy of one image lies, in pixel coordinates.
struct Geometry {
    centre: Point,
    radius: f32,
    disc: Point,
    disc_radius: f32,
    macula: Point,
    /// Short side over `REFERENCE_SIDE`.
    scale: f32,
}

impl Geometry {
    fn random(cfg: &SyntheticRetina, rng: &mut ChaCha8Rng) -> Self {
        let side = cfg.width.min(cfg.height) as f32;
        let centre = [
            cfg.width as f32 / 2.0 + side * rng.random_range(-0.02..0.02),
            cfg.height as f32 / 2.0 + side * rng.random_range(-0.02..0.02),
        ];
        let radius = side * rng.random_range(0.43..0.47);
        // Left or right eye: the disc sits on one side, the macula near the centre.
        let eye = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
        let disc = [
            centre[0] + eye * radius * rng.random_range(0.5..0.62),
            centre[1] + radius * rng.random_range(-0.1..0.1),
        ];
        let macula = [
            centre[0] - eye * radius * rng.random_range(0.05..0.15),
            centre[1] + radius * rng.random_range(-0.05..0.05),
        ];
        Self {
            centre,
            radius,
            disc,
            disc_radius: radius * rng.random_range(0.13..0.17),
            macula,
            scale: side / REFERENCE_SIDE,
        }
    }
}

/// One straight piece of a vessel centreline.
struct Stroke {
    a: Point,
    b: Point,
    width: f32,
    contrast: f32,
}

/// A vessel still to be grown.
struct Vessel {
    start: Point,
    heading: f32,
    width: f32,
    /// 0 for a trunk leaving the disc, `n` for a branch of a level `n - 1` vessel.
    level: usize,
    /// Darkness of the tree's widest vessels.
    contrast: f32,
    /// For the temporal arcades: which way they circle the macula.
    arcade: Option<f32>,
}

fn grow_trees(cfg: &SyntheticRetina, geo: &Geometry, rng: &mut ChaCha8Rng) -> Vec<Stroke> {
    let axis = angle(sub(geo.macula, geo.disc));
    let spread = TAU / cfg.trees.max(1) as f32;
    let mut strokes = Vec::new();
    for k in 0..cfg.trees {
        // Offset by half a spread so no trunk heads straight into the macula.
        let heading = axis + (k as f32 + 0.5 + rng.random_range(-0.2..0.2)) * spread;
        let rel = heading - axis;
        let arcade = (rel.cos() > 0.0).then(|| if rel.sin() > 0.0 { -1.0 } else { 1.0 });
        let mut stack = vec![Vessel {
            start: geo.disc,
            heading,
            width: cfg.vessel_width * geo.scale * rng.random_range(0.85..1.1),
            level: 0,
            contrast: rng.random_range(0.4..0.6),
            arcade,
        }];
        while let Some(vessel) = stack.pop() {
            grow_vessel(cfg, geo, vessel, rng, &mut strokes, &mut stack);
        }
    }
    strokes
}

/// Walks one vessel as a tortuous polyline (a random walk on its heading),
/// leaving side branches on alternate sides as it goes.
fn grow_vessel(
    cfg: &SyntheticRetina,
    geo: &Geometry,
    v: Vessel,
    rng: &mut ChaCha8Rng,
    strokes: &mut Vec<Stroke>,
    stack: &mut Vec<Vessel>,
) {
    let root = cfg.vessel_width * geo.scale;
    let thinnest = THINNEST * geo.scale;
    let step = geo.radius / 50.0;
    // Trunks run right round the macula; each branch level is about half as long.
    let length = geo.radius * rng.random_range(1.5..2.2) * 0.45f32.powi(v.level as i32);
    let steps = (length / step) as usize;
    let wiggle = 0.08 + 0.03 * v.level as f32;
    let contrast = v.contrast * rng.random_range(0.85..1.15);
    let mut side = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
    let mut next_branch = branch_gap(geo, rng);
    let (mut p, mut heading, mut width) = (v.start, v.heading, v.width);
    for i in 1..=steps {
        heading += wiggle * gaussian(rng) + steer(geo, p, heading, v.arcade);
        let q = [p[0] + step * heading.cos(), p[1] + step * heading.sin()];
        // Thin vessels are fainter as well as narrower.
        let faint = 0.55 + 0.45 * (width / root).min(1.0);
        strokes.push(Stroke {
            a: p,
            b: q,
            width,
            contrast: contrast * faint,
        });
        p = q;
        // Vessels end at the edge of the field of view and around the fovea.
        if dist(p, geo.centre) > geo.radius || dist(p, geo.macula) < 0.1 * geo.radius {
            return;
        }
        let travelled = i as f32 * step;
        if travelled < next_branch || v.level >= cfg.depth || width <= thinnest {
            continue;
        }
        // Murray's law: the cubes of the two widths add up to the parent's.
        let child = (width * rng.random_range(0.35..0.7)).max(thinnest);
        width = (width.powi(3) - child.powi(3))
            .max(0.0)
            .cbrt()
            .max(thinnest);
        stack.push(Vessel {
            start: p,
            heading: heading + side * rng.random_range(0.6..1.3),
            width: child,
            level: v.level + 1,
            contrast: v.contrast,
            arcade: None,
        });
        side = -side;
        next_branch = travelled + branch_gap(geo, rng);
    }
}

/// Distance along a vessel between two side branches.
fn branch_gap(geo: &Geometry, rng: &mut ChaCha8Rng) -> f32 {
    geo.radius * rng.random_range(0.15..0.4)
}

/// Heading correction: arcades circle the macula, and every vessel turns
/// away from the avascular fovea.
fn steer(geo: &Geometry, p: Point, heading: f32, arcade: Option<f32>) -> f32 {
    let away = sub(p, geo.macula);
    let mut turn = 0.0;
    if let Some(sign) = arcade {
        turn += 0.1 * (angle(away) + sign * FRAC_PI_2 - heading).sin();
    }
    let near = 1.0 - dist(p, geo.macula) / (0.3 * geo.radius);
    if near > 0.0 {
        turn += 0.3 * near * (angle(away) - heading).sin();
    }
    turn
}

fn fov_mask(width: usize, height: usize, geo: &Geometry) -> Mask {
    let data = (0..height)
        .flat_map(|y| (0..width).map(move |x| centre_of(x, y)))
        .map(|p| u8::from(dist(p, geo.centre) <= geo.radius))
        .collect();
    Mask::new(width, height, data)
}

/// Soft vessel darkness per pixel (for the image) and the exact label.
fn rasterize(strokes: &[Stroke], fov: &Mask) -> (Vec<f32>, Mask) {
    let (w, h) = (fov.width, fov.height);
    let mut darkness = vec![0.0f32; w * h];
    let mut label = Mask::filled(w, h, 0);
    for s in strokes {
        let half = s.width / 2.0;
        let reach = half + 1.0;
        let x0 = (s.a[0].min(s.b[0]) - reach).floor().max(0.0) as usize;
        let y0 = (s.a[1].min(s.b[1]) - reach).floor().max(0.0) as usize;
        let x1 = ((s.a[0].max(s.b[0]) + reach).ceil().max(0.0) as usize).min(w);
        let y1 = ((s.a[1].max(s.b[1]) + reach).ceil().max(0.0) as usize).min(h);
        for y in y0..y1 {
            for x in x0..x1 {
                let d = segment_distance(centre_of(x, y), s.a, s.b);
                let i = y * w + x;
                // One-pixel soft edge, slightly darker along the centreline.
                let cover = (half + 0.5 - d).clamp(0.0, 1.0);
                let core = (1.0 - (d / (half + 0.5)).powi(2)).max(0.0);
                darkness[i] = darkness[i].max(s.contrast * cover * (0.75 + 0.25 * core));
                if d <= half && fov.data[i] == 1 {
                    label.data[i] = 1;
                }
            }
        }
    }
    (darkness, label)
}

/// Fundus background times vessel darkness, plus noise, cut to the disc.
fn compose(cfg: &SyntheticRetina, geo: &Geometry, darkness: &[f32], rng: &mut ChaCha8Rng) -> Image {
    let background = Background::random(cfg, geo, rng);
    let mut data = Vec::with_capacity(cfg.width * cfg.height * 3);
    for y in 0..cfg.height {
        for x in 0..cfg.width {
            let p = centre_of(x, y);
            let fundus = background.at(geo, p);
            let inside = (geo.radius - dist(p, geo.centre) + 0.5).clamp(0.0, 1.0);
            let dark = darkness[y * cfg.width + x];
            for c in 0..3 {
                let vessel = fundus[c] * (1.0 - dark * CHANNEL_WEIGHT[c]);
                let noise = cfg.noise * gaussian(rng) * if inside > 0.0 { 1.0 } else { 0.3 };
                data.push((vessel * inside + noise).clamp(0.0, 1.0));
            }
        }
    }
    Image::new(cfg.width, cfg.height, 3, data)
}

/// The colour of one image's fundus without vessels.
struct Background {
    base: [f32; 3],
    disc: [f32; 3],
    /// Linear illumination gradient across the field of view.
    tilt: Point,
    coarse: ValueNoise,
    fine: ValueNoise,
}

impl Background {
    fn random(cfg: &SyntheticRetina, geo: &Geometry, rng: &mut ChaCha8Rng) -> Self {
        Self {
            base: [
                rng.random_range(0.72..0.85),
                rng.random_range(0.32..0.42),
                rng.random_range(0.12..0.2),
            ],
            disc: [1.0, rng.random_range(0.8..0.9), rng.random_range(0.5..0.6)],
            tilt: [rng.random_range(-0.15..0.15), rng.random_range(-0.15..0.15)],
            coarse: ValueNoise::new(cfg.width, cfg.height, geo.radius / 3.0, rng),
            fine: ValueNoise::new(cfg.width, cfg.height, geo.radius / 10.0, rng),
        }
    }

    fn at(&self, geo: &Geometry, p: Point) -> [f32; 3] {
        let rel = [
            (p[0] - geo.centre[0]) / geo.radius,
            (p[1] - geo.centre[1]) / geo.radius,
        ];
        let vignette = 1.0 - 0.3 * (rel[0] * rel[0] + rel[1] * rel[1]);
        let gradient = 1.0 + self.tilt[0] * rel[0] + self.tilt[1] * rel[1];
        let texture = 1.0 + 0.06 * self.coarse.at(p) + 0.03 * self.fine.at(p);
        let macula = 1.0 - 0.25 * (-(dist(p, geo.macula) / (0.18 * geo.radius)).powi(2)).exp();
        let light = vignette * gradient * texture * macula;
        let disc = 0.85 * (-(dist(p, geo.disc) / geo.disc_radius).powi(4)).exp();
        std::array::from_fn(|c| self.base[c] * light * (1.0 - disc) + self.disc[c] * disc)
    }
}

/// Smooth random field in `[-1, 1]` with features about `cell` pixels across.
struct ValueNoise {
    cols: usize,
    cell: f32,
    values: Vec<f32>,
}

impl ValueNoise {
    fn new(width: usize, height: usize, cell: f32, rng: &mut ChaCha8Rng) -> Self {
        let cell = cell.max(1.0);
        let cols = (width as f32 / cell) as usize + 2;
        let rows = (height as f32 / cell) as usize + 2;
        let values = (0..cols * rows)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        Self { cols, cell, values }
    }

    fn at(&self, p: Point) -> f32 {
        let (gx, gy) = (p[0] / self.cell, p[1] / self.cell);
        let (ix, iy) = (gx as usize, gy as usize);
        let smooth = |t: f32| t * t * (3.0 - 2.0 * t);
        let (tx, ty) = (smooth(gx.fract()), smooth(gy.fract()));
        let v = |dx: usize, dy: usize| self.values[(iy + dy) * self.cols + ix + dx];
        let top = v(0, 0) + (v(1, 0) - v(0, 0)) * tx;
        let bottom = v(0, 1) + (v(1, 1) - v(0, 1)) * tx;
        top + (bottom - top) * ty
    }
}

/// Roughly standard normal (Irwin–Hall sum of four uniforms): cheap and
/// reproducible without another dependency.
fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
    let sum: f32 = (0..4).map(|_| rng.random::<f32>()).sum();
    (sum - 2.0) * 3f32.sqrt()
}

fn centre_of(x: usize, y: usize) -> Point {
    [x as f32 + 0.5, y as f32 + 0.5]
}

fn sub(a: Point, b: Point) -> Point {
    [a[0] - b[0], a[1] - b[1]]
}

fn angle(v: Point) -> f32 {
    v[1].atan2(v[0])
}

fn dist(a: Point, b: Point) -> f32 {
    let d = sub(a, b);
    d[0].hypot(d[1])
}

/// Distance from `p` to the segment `a`-`b`.
fn segment_distance(p: Point, a: Point, b: Point) -> f32 {
    let (ab, ap) = (sub(b, a), sub(p, a));
    let len2 = ab[0] * ab[0] + ab[1] * ab[1];
    let t = if len2 > 0.0 {
        ((ap[0] * ab[0] + ap[1] * ab[1]) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    dist(p, [a[0] + t * ab[0], a[1] + t * ab[1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vessel_fraction(s: &Sample) -> f64 {
        s.label.count() as f64 / s.fov.count() as f64
    }

    #[test]
    fn same_seed_same_sample() {
        let g = SyntheticRetina::default();
        let (a, b) = (g.sample(7), g.sample(7));
        assert_eq!(a.image, b.image);
        assert_eq!(a.label, b.label);
        assert_eq!(a.fov, b.fov);
        assert_eq!(a.id, "synthetic-7");
        assert_eq!(a.fov_source, FovSource::Given);
    }

    #[test]
    fn dataset_uses_consecutive_seeds() {
        let g = SyntheticRetina::default();
        let set = g.dataset(3, 10);
        let ids: Vec<_> = set.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["synthetic-10", "synthetic-11", "synthetic-12"]);
        assert_eq!(set[1].label, g.sample(11).label);
    }

    #[test]
    fn different_seeds_differ() {
        let g = SyntheticRetina::default();
        assert_ne!(g.sample(1).label, g.sample(2).label);
    }

    #[test]
    fn sizes_and_ranges_are_consistent() {
        for (w, h) in [(128, 128), (200, 150)] {
            let g = SyntheticRetina {
                width: w,
                height: h,
                ..SyntheticRetina::default()
            };
            let s = g.sample(3);
            assert_eq!((s.image.width, s.image.height, s.image.channels), (w, h, 3));
            assert_eq!((s.label.width, s.label.height), (w, h));
            assert_eq!((s.fov.width, s.fov.height), (w, h));
            assert!(s.image.data.iter().all(|v| (0.0..=1.0).contains(v)));
            assert!(s.label.count() > 0);
        }
    }

    #[test]
    fn label_lies_inside_fov() {
        let s = SyntheticRetina::default().sample(4);
        let outside = s
            .label
            .data
            .iter()
            .zip(&s.fov.data)
            .filter(|&(&l, &f)| l > f);
        assert_eq!(outside.count(), 0);
    }

    #[test]
    fn vessel_fraction_is_realistic() {
        let g = SyntheticRetina::default();
        for seed in 0..5 {
            let f = vessel_fraction(&g.sample(seed));
            assert!(
                (0.05..=0.25).contains(&f),
                "seed {seed}: vessel fraction {f}"
            );
        }
    }

    #[test]
    fn vessels_are_darker_in_green() {
        let s = SyntheticRetina::default().sample(5);
        let (mut vessel, mut background) = ((0.0, 0), (0.0, 0));
        for (i, (&l, &f)) in s.label.data.iter().zip(&s.fov.data).enumerate() {
            let green = f64::from(s.image.data[i * 3 + 1]);
            match (f, l) {
                (1, 1) => vessel = (vessel.0 + green, vessel.1 + 1),
                (1, _) => background = (background.0 + green, background.1 + 1),
                _ => {}
            }
        }
        let (v, b) = (
            vessel.0 / vessel.1 as f64,
            background.0 / background.1 as f64,
        );
        assert!(v < b - 0.05, "vessel green {v} vs background {b}");
    }

    #[test]
    fn runs_at_drive_size() {
        let g = SyntheticRetina {
            width: 565,
            height: 584,
            ..SyntheticRetina::default()
        };
        let f = vessel_fraction(&g.sample(0));
        assert!((0.05..=0.25).contains(&f), "vessel fraction {f}");
    }
}
