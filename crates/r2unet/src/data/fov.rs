//! Field-of-view masks computed from fundus photographs that ship without one
//! (CHASE_DB1; STARE's are optional): the bright disc of the retina against a
//! dark border, and the Dice overlap used to check such masks.
//!
//! The recipe: threshold the red channel at a fraction of its 99th
//! percentile, keep the largest 8-connected component, fill its holes and
//! erode it a little so that the dark rim of the disc is left out.

use super::image::{Image, Mask};

/// Settings of [`compute_fov_with`].
///
/// The threshold is `max(fraction * percentile-th value, min_level)` of the
/// red channel. A fraction of a high percentile rather than Otsu: the border
/// of a fundus photograph is near black (a few levels of JPEG noise) while
/// even the vignetted rim of the retina is many times brighter, so any
/// threshold well above the noise and well below the disc works; scaling it by
/// the bright end follows the exposure, and a percentile rather than the
/// maximum ignores hot pixels. Otsu instead splits the *largest* contrast,
/// which in a strongly vignetted or bright-optic-disc image can fall inside the
/// retina and cut off its periphery.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FovParams {
    /// Fraction of the reference brightness that counts as retina.
    pub fraction: f32,
    /// Which quantile (in `[0, 1]`) of the red channel is the reference brightness.
    pub percentile: f32,
    /// Lowest threshold, above the JPEG noise of a black border (10/255 by default).
    pub min_level: f32,
    /// Radius in pixels of the disc the mask is eroded by.
    pub erosion: usize,
}

impl Default for FovParams {
    fn default() -> Self {
        Self {
            fraction: 0.15,
            percentile: 0.99,
            min_level: 10.0 / 255.0,
            erosion: 2,
        }
    }
}

/// [`compute_fov_with`] with the default [`FovParams`].
pub fn compute_fov(image: &Image) -> Mask {
    compute_fov_with(image, FovParams::default())
}

/// Field-of-view mask of a fundus photograph: the red channel (channel 0; the
/// grey channel of a 1-channel image) thresholded as [`FovParams`] describes,
/// its largest 8-connected component with holes filled, eroded by
/// `params.erosion` pixels. Pixels outside the image do not erode, so a disc
/// clipped by the image edge keeps its straight sides.
///
/// An image with nothing above the threshold (all dark, or empty) gives an
/// empty mask.
pub fn compute_fov_with(image: &Image, params: FovParams) -> Mask {
    let (w, h) = (image.width, image.height);
    if w * h == 0 || image.channels == 0 {
        return Mask::filled(w, h, 0);
    }
    let red = image.channel(0);
    let reference = quantile(&red.data, params.percentile);
    let threshold = (params.fraction * reference).max(params.min_level);
    let bright: Vec<bool> = red.data.iter().map(|&v| v > threshold).collect();
    let disc = largest_component(&bright, w, h);
    let filled = fill_holes(&disc, w, h);
    let eroded = erode(&filled, w, h, params.erosion);
    Mask::new(w, h, eroded.iter().map(|&b| u8::from(b)).collect())
}

/// The `q`-quantile (`q` clamped to `[0, 1]`, NaN as 1) of the finite values,
/// by selection rather than a full sort; 0 when there are none.
fn quantile(values: &[f32], q: f32) -> f32 {
    let mut finite: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return 0.0;
    }
    let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
    let k = (q * (finite.len() - 1) as f32).round() as usize;
    *finite.select_nth_unstable_by(k, f32::total_cmp).1
}

/// Neighbours of pixel `i` in a `w x h` grid: the 4 edge neighbours, plus the
/// 4 diagonal ones when `diagonal`.
fn neighbours(i: usize, w: usize, h: usize, diagonal: bool) -> impl Iterator<Item = usize> {
    let (x, y) = ((i % w) as isize, (i / w) as isize);
    const EDGE: [(isize, isize); 4] = [(1, 0), (-1, 0), (0, 1), (0, -1)];
    const CORNER: [(isize, isize); 4] = [(1, 1), (1, -1), (-1, 1), (-1, -1)];
    let corners = if diagonal { &CORNER[..] } else { &[] };
    EDGE.iter()
        .chain(corners)
        .map(move |&(dx, dy)| (x + dx, y + dy))
        .filter(move |&(nx, ny)| nx >= 0 && ny >= 0 && nx < w as isize && ny < h as isize)
        .map(move |(nx, ny)| ny as usize * w + nx as usize)
}

/// Pixels reachable from `seeds` through pixels where `open` is true, by an
/// explicit stack (no recursion: images reach millions of pixels). Seeds
/// already `seen` or not `open` are skipped; the visited pixels are marked in `seen`.
fn flood(
    open: &[bool],
    seen: &mut [bool],
    seeds: impl IntoIterator<Item = usize>,
    w: usize,
    h: usize,
    diagonal: bool,
) -> Vec<usize> {
    let mut stack = Vec::new();
    let mut region = Vec::new();
    for seed in seeds {
        if open[seed] && !seen[seed] {
            seen[seed] = true;
            stack.push(seed);
        }
    }
    while let Some(i) = stack.pop() {
        region.push(i);
        for n in neighbours(i, w, h, diagonal) {
            if open[n] && !seen[n] {
                seen[n] = true;
                stack.push(n);
            }
        }
    }
    region
}

/// The largest 8-connected component of `fg` (the first found on ties).
fn largest_component(fg: &[bool], w: usize, h: usize) -> Vec<bool> {
    let mut seen = vec![false; fg.len()];
    let mut best: Vec<usize> = Vec::new();
    for start in 0..fg.len() {
        if fg[start] && !seen[start] {
            let region = flood(fg, &mut seen, [start], w, h, true);
            if region.len() > best.len() {
                best = region;
            }
        }
    }
    let mut out = vec![false; fg.len()];
    for i in best {
        out[i] = true;
    }
    out
}

/// Fills holes: background pixels not 4-connected to the image border become
/// foreground (4-connected background is the dual of 8-connected foreground).
fn fill_holes(fg: &[bool], w: usize, h: usize) -> Vec<bool> {
    let bg: Vec<bool> = fg.iter().map(|&f| !f).collect();
    let border = (0..w)
        .flat_map(|x| [x, (h - 1) * w + x])
        .chain((0..h).flat_map(|y| [y * w, y * w + w - 1]));
    let mut outside = vec![false; fg.len()];
    flood(&bg, &mut outside, border, w, h, false);
    outside.iter().map(|&o| !o).collect()
}

/// Erosion by a disc of `radius` pixels: a pixel stays set when every pixel of
/// the image within that Euclidean distance is set. Cost `O(pixels * radius²)`,
/// fine for the few pixels of rim it is meant for.
fn erode(fg: &[bool], w: usize, h: usize, radius: usize) -> Vec<bool> {
    if radius == 0 {
        return fg.to_vec();
    }
    let r = radius as isize;
    let offsets: Vec<(isize, isize)> = (-r..=r)
        .flat_map(|dy| (-r..=r).map(move |dx| (dx, dy)))
        .filter(|&(dx, dy)| dx * dx + dy * dy <= r * r)
        .collect();
    (0..fg.len())
        .map(|i| {
            let (x, y) = ((i % w) as isize, (i / w) as isize);
            fg[i]
                && offsets.iter().all(|&(dx, dy)| {
                    let (nx, ny) = (x + dx, y + dy);
                    let outside = nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize;
                    outside || fg[ny as usize * w + nx as usize]
                })
        })
        .collect()
}

/// The diameter of a fundus field of view in pixels: the horizontal extent
/// of the mask (first to last column holding a FOV pixel). Horizontal because
/// fundus cameras crop the disc at the top and bottom, not at the sides
/// (DRIVE, STARE, CHASE_DB1); 0 for an empty mask.
pub fn fov_diameter(fov: &Mask) -> usize {
    let (w, h) = (fov.width, fov.height);
    let column_has = |x: usize| (0..h).any(|y| fov.data[y * w + x] != 0);
    match (0..w).find(|&x| column_has(x)) {
        Some(first) => (first..w).rev().find(|&x| column_has(x)).unwrap_or(first) - first + 1,
        None => 0,
    }
}

/// Dice overlap `2 |A ∩ B| / (|A| + |B|)`; 1.0 when both masks are empty.
///
/// # Panics
///
/// If the masks differ in size (the message gives both sizes).
pub fn dice(a: &Mask, b: &Mask) -> f64 {
    assert!(
        a.width == b.width && a.height == b.height,
        "dice of masks of different sizes: {}x{} and {}x{}",
        a.width,
        a.height,
        b.width,
        b.height
    );
    let both: usize = a
        .data
        .iter()
        .zip(&b.data)
        .filter(|&(&x, &y)| x == 1 && y == 1)
        .count();
    let total = a.count() + b.count();
    if total == 0 {
        1.0
    } else {
        2.0 * both as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_fov_diameter_is_its_horizontal_extent() {
        // A disc of radius 20 centred at (30, 25) in 70x40, cut at the top
        // and bottom as fundus cameras cut it: 41 columns wide.
        let (w, h) = (70, 40);
        let data = (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f64 - 30.0, (i / w) as f64 - 25.0);
                u8::from(x * x + y * y <= 400.0)
            })
            .collect();
        assert_eq!(fov_diameter(&Mask::new(w, h, data)), 41);
        assert_eq!(fov_diameter(&Mask::filled(9, 4, 1)), 9);
        assert_eq!(fov_diameter(&Mask::filled(9, 4, 0)), 0);
    }

    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const W: usize = 120;
    const H: usize = 100;

    /// The true disc of radius `r` around the image centre (60, 50).
    fn disc(r: f32) -> Mask {
        let data = (0..W * H)
            .map(|i| {
                let (dx, dy) = ((i % W) as f32 - 60.0, (i / W) as f32 - 50.0);
                u8::from(dx * dx + dy * dy <= r * r)
            })
            .collect();
        Mask::new(W, H, data)
    }

    /// RGB fundus stand-in: red 0.6 inside the radius-40 disc, 0.02 outside,
    /// plus uniform noise of `noise` amplitude; green and blue dimmer.
    fn fundus(noise: f32, seed: u64) -> Image {
        let truth = disc(40.0);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut data = Vec::with_capacity(W * H * 3);
        for &inside in &truth.data {
            let base = if inside == 1 { 0.6 } else { 0.02 };
            let red = (base + noise * rng.random_range(-1.0..1.0f32)).max(0.0);
            data.extend([red, red * 0.5, red * 0.25]);
        }
        Image::new(W, H, 3, data)
    }

    fn set_red(image: &mut Image, x: usize, y: usize, value: f32) {
        image.data[(y * W + x) * 3] = value;
    }

    fn exact() -> FovParams {
        FovParams {
            erosion: 0,
            ..FovParams::default()
        }
    }

    #[test]
    fn noisy_disc_is_found() {
        // Noise ±0.02: border at most 0.04, under the threshold
        // max(0.15 * ~0.62, 10/255) ≈ 0.093; disc at least 0.58. Erosion by 2 px
        // leaves about the disc of radius 40 - 2 = 38.
        let mask = compute_fov(&fundus(0.02, 7));
        let d = dice(&mask, &disc(38.0));
        assert!(d > 0.98, "dice {d}");
        assert_eq!(mask.get(0, 0), 0);
        assert_eq!(mask.get(60, 50), 1);
    }

    #[test]
    fn dark_blob_inside_the_disc_is_filled() {
        // A radius-8 blob of level 0.03 at (75, 50) lies wholly inside the disc,
        // so filling holes gives back exactly the clean disc.
        let mut image = fundus(0.0, 0);
        for y in 42..=58 {
            for x in 67..=83 {
                let (dx, dy) = (x as f32 - 75.0, y as f32 - 50.0);
                if dx * dx + dy * dy <= 64.0 {
                    set_red(&mut image, x, y, 0.03);
                }
            }
        }
        assert_eq!(compute_fov_with(&image, exact()), disc(40.0));
    }

    #[test]
    fn bright_speck_outside_is_dropped() {
        // A 3x3 speck at the corner (9 px) loses to the disc (~5000 px).
        let mut image = fundus(0.0, 0);
        for y in 2..5 {
            for x in 2..5 {
                set_red(&mut image, x, y, 0.9);
            }
        }
        assert_eq!(compute_fov_with(&image, exact()), disc(40.0));
    }

    #[test]
    fn dark_images_give_empty_masks() {
        assert_eq!(compute_fov(&Image::filled(W, H, 3, 0.0)).count(), 0);
        // Noise up to 0.03 stays under the 10/255 ≈ 0.039 floor.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let data = (0..W * H).map(|_| rng.random_range(0.0..0.03f32)).collect();
        assert_eq!(compute_fov(&Image::new(W, H, 1, data)).count(), 0);
        assert_eq!(compute_fov(&Image::filled(0, 0, 3, 0.0)).count(), 0);
    }

    #[test]
    fn erosion_ignores_the_image_edge() {
        // A full 5x5 mask stays full (the outside does not erode); a 3x3 block
        // in it shrinks by radius 1 to its centre pixel.
        assert!(erode(&[true; 25], 5, 5, 1).iter().all(|&b| b));
        let block: Vec<bool> = (0..25)
            .map(|i| (1..4).contains(&(i % 5)) && (1..4).contains(&(i / 5)))
            .collect();
        let out = erode(&block, 5, 5, 1);
        assert_eq!(out.iter().filter(|&&b| b).count(), 1);
        assert!(out[12]);
    }

    #[test]
    fn dice_by_hand() {
        // |A ∩ B| = 1, |A| = |B| = 2: 2 * 1 / 4 = 0.5.
        let a = Mask::new(2, 2, vec![1, 1, 0, 0]);
        let b = Mask::new(2, 2, vec![1, 0, 1, 0]);
        assert_eq!(dice(&a, &b), 0.5);
        assert_eq!(dice(&a, &a), 1.0);
        let empty = Mask::filled(2, 2, 0);
        assert_eq!(dice(&empty, &empty), 1.0);
        assert_eq!(dice(&a, &empty), 0.0);
    }

    #[test]
    #[should_panic(expected = "2x2 and 3x1")]
    fn dice_of_different_sizes_panics() {
        dice(&Mask::filled(2, 2, 0), &Mask::filled(3, 1, 0));
    }
}
