//! Preprocessing steps of the paper protocols, each a small pure function.
//!
//! The retina protocol of R2U-Net (Alom et al. 2018) is the classic
//! retina-unet one: grey conversion, dataset standardisation, CLAHE, gamma
//! correction ([`retina_protocol`]). CT slices are windowed
//! ([`window_hu`]); every dataset may be resized ([`resize_image`],
//! [`resize_mask`]).

use super::image::{Image, Mask};
use crate::error::{Error, Result};

/// Default CT window in Hounsfield units: lung tissue to soft tissue.
pub const HU_WINDOW: (f32, f32) = (-1000.0, 400.0);

/// CLAHE clip limit of the retina protocol (`cv2.createCLAHE(clipLimit=2.0)`).
pub const RETINA_CLAHE_CLIP: f32 = 2.0;
/// CLAHE tile grid of the retina protocol (`tileGridSize=(8, 8)`).
pub const RETINA_CLAHE_TILES: usize = 8;
/// Gamma of the retina protocol.
pub const RETINA_GAMMA: f32 = 1.2;

/// Grey image with ITU-R BT.601 weights `0.299 R + 0.587 G + 0.114 B`, as the
/// classic retina-unet `rgb2gray`.
///
/// A 1-channel image is returned unchanged; a 2-channel (grey + alpha) image
/// keeps its grey channel; a 4-channel (RGBA) image ignores its alpha.
pub fn luminance(image: &Image) -> Image {
    match image.channels {
        0..=2 => image.channel(0),
        c => {
            let data = image
                .data
                .chunks_exact(c)
                .map(|px| 0.299 * px[0] + 0.587 * px[1] + 0.114 * px[2])
                .collect();
            Image::new(image.width, image.height, 1, data)
        }
    }
}

/// The green channel of an RGB(A) image, the grey channel otherwise; vessels
/// have the most contrast there.
pub fn green(image: &Image) -> Image {
    image.channel(if image.channels >= 3 { 1 } else { 0 })
}

/// Dataset standardisation of the classic protocol: subtracts the mean and
/// divides by the standard deviation of all values of all `images`, then
/// rescales each image min–max to `[0, 1]` (a constant image becomes 0).
///
/// Returns `(mean, std)` so that test images can be given the training
/// statistics with [`apply_standardization`]. The std is the population one
/// (`numpy.std`); an empty slice gives `(0, 1)`.
pub fn standardize(images: &mut [Image]) -> (f32, f32) {
    let (mean, std) = mean_std(images);
    for image in images.iter_mut() {
        apply_standardization(image, mean, std);
    }
    (mean, std)
}

/// Applies given standardisation statistics, then the per-image min–max
/// rescale to `[0, 1]`. A zero or non-finite `std` divides by 1 instead.
pub fn apply_standardization(image: &mut Image, mean: f32, std: f32) {
    let std = if std.is_finite() && std > 0.0 {
        std
    } else {
        1.0
    };
    for v in &mut image.data {
        *v = (*v - mean) / std;
    }
    min_max(image);
}

/// Mean and population standard deviation over every value of every image,
/// accumulated in f64 so a whole dataset does not lose precision.
fn mean_std(images: &[Image]) -> (f32, f32) {
    let n: usize = images.iter().map(|im| im.data.len()).sum();
    if n == 0 {
        return (0.0, 1.0);
    }
    let values = || {
        images
            .iter()
            .flat_map(|im| im.data.iter().map(|&v| v as f64))
    };
    let mean = values().sum::<f64>() / n as f64;
    let var = values().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
    (mean as f32, var.sqrt() as f32)
}

/// Rescales `image` linearly so that its minimum is 0 and maximum 1; a
/// constant image becomes all 0.
fn min_max(image: &mut Image) {
    let (lo, hi) = image
        .data
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let range = hi - lo;
    for v in &mut image.data {
        *v = if range > 0.0 { (*v - lo) / range } else { 0.0 };
    }
}

/// Contrast-limited adaptive histogram equalisation with OpenCV's semantics
/// (`cv2.createCLAHE(clip_limit, (tiles_x, tiles_y)).apply` on 8-bit data).
///
/// `image` is a 1-channel image in `[0, 1]`, quantised to `round(v * 255)`.
/// As OpenCV, when the tiles do not divide the image it is padded on the
/// right and bottom by reflection (`BORDER_REFLECT_101`) by
/// `tiles - size % tiles` in *both* directions (so a direction that divides
/// still gets `tiles` extra pixels). Per tile, the 256-bin histogram is clipped
/// at `max(1, (clip_limit * tile_area / 256) as int)` counts, the excess
/// spread evenly over all bins and the remainder by OpenCV's step rule; the
/// lookup table is `round(cdf * 255 / tile_area)`. Each pixel bilinearly
/// mixes the tables of its four nearest tile centres. Output is `lut / 255`.
///
/// # Errors
///
/// [`Error::Invalid`] if `image` has more than one channel, a tile count is
/// zero or exceeds the image size, or `clip_limit` is not finite and positive.
pub fn clahe(image: &Image, clip_limit: f32, tiles_x: usize, tiles_y: usize) -> Result<Image> {
    if image.channels != 1 {
        return Err(Error::invalid(
            "CLAHE input",
            format!(
                "expected a 1-channel image, got {} channels",
                image.channels
            ),
        ));
    }
    if !(clip_limit.is_finite() && clip_limit > 0.0) {
        return Err(Error::invalid(
            "CLAHE clip limit",
            format!("expected a finite positive number, got {clip_limit}"),
        ));
    }
    if tiles_x == 0 || tiles_y == 0 || tiles_x > image.width || tiles_y > image.height {
        return Err(Error::invalid(
            "CLAHE tile grid",
            format!(
                "{tiles_x}x{tiles_y} tiles do not fit a {}x{} image (need 1 to size tiles per side)",
                image.width, image.height
            ),
        ));
    }
    let levels: Vec<u8> = image.data.iter().map(|&v| quantize(v)).collect();
    let grid = TileGrid::new(image.width, image.height, tiles_x, tiles_y);
    let limit = ((f64::from(clip_limit) * grid.area() as f64 / 256.0) as u32).max(1);
    let luts: Vec<[u8; 256]> = (0..tiles_y)
        .flat_map(|ty| (0..tiles_x).map(move |tx| (tx, ty)))
        .map(|(tx, ty)| {
            let mut hist = grid.histogram(&levels, image.width, image.height, tx, ty);
            clip_histogram(&mut hist, limit);
            lut_from_histogram(&hist, grid.area())
        })
        .collect();
    Ok(grid.interpolate(&levels, image.width, image.height, &luts))
}

/// `[0, 1]` value to an 8-bit level; out-of-range values saturate (NaN gives 0).
fn quantize(v: f32) -> u8 {
    (v * 255.0).round().clamp(0.0, 255.0) as u8
}

/// OpenCV's `borderInterpolate` for `BORDER_REFLECT_101` (`gfedcb|abcdefgh|gfedcba`),
/// reflecting as often as needed for pads longer than the image.
fn reflect101(mut p: isize, len: usize) -> usize {
    let len = len as isize;
    if len == 1 {
        return 0;
    }
    while p < 0 || p >= len {
        p = if p < 0 { -p } else { 2 * (len - 1) - p };
    }
    p as usize
}

/// Tile geometry of CLAHE on the (possibly padded) image.
struct TileGrid {
    tiles_x: usize,
    tiles_y: usize,
    tile_w: usize,
    tile_h: usize,
}

impl TileGrid {
    fn new(width: usize, height: usize, tiles_x: usize, tiles_y: usize) -> Self {
        let (padded_w, padded_h) =
            if width.is_multiple_of(tiles_x) && height.is_multiple_of(tiles_y) {
                (width, height)
            } else {
                // OpenCV pads both sides by `tiles - size % tiles`, even a side that divides.
                (
                    width + tiles_x - width % tiles_x,
                    height + tiles_y - height % tiles_y,
                )
            };
        Self {
            tiles_x,
            tiles_y,
            tile_w: padded_w / tiles_x,
            tile_h: padded_h / tiles_y,
        }
    }

    fn area(&self) -> usize {
        self.tile_w * self.tile_h
    }

    /// 256-bin histogram of tile `(tx, ty)`, reading padded pixels by reflection.
    fn histogram(
        &self,
        levels: &[u8],
        width: usize,
        height: usize,
        tx: usize,
        ty: usize,
    ) -> [u32; 256] {
        let mut hist = [0u32; 256];
        for py in ty * self.tile_h..(ty + 1) * self.tile_h {
            let y = reflect101(py as isize, height);
            for px in tx * self.tile_w..(tx + 1) * self.tile_w {
                let x = reflect101(px as isize, width);
                hist[levels[y * width + x] as usize] += 1;
            }
        }
        hist
    }

    /// Bilinear mix of the four nearest tiles' tables, OpenCV's
    /// `CLAHE_Interpolation_Body` arithmetic in f32.
    fn interpolate(&self, levels: &[u8], width: usize, height: usize, luts: &[[u8; 256]]) -> Image {
        let xs: Vec<(usize, usize, f32)> = (0..width)
            .map(|x| neighbours(x, self.tile_w, self.tiles_x))
            .collect();
        let mut data = Vec::with_capacity(width * height);
        for y in 0..height {
            let (ty1, ty2, ya) = neighbours(y, self.tile_h, self.tiles_y);
            let (row1, row2) = (&luts[ty1 * self.tiles_x..], &luts[ty2 * self.tiles_x..]);
            for (x, &(tx1, tx2, xa)) in xs.iter().enumerate() {
                let v = levels[y * width + x] as usize;
                let mix = |row: &[[u8; 256]]| {
                    f32::from(row[tx1][v]) * (1.0 - xa) + f32::from(row[tx2][v]) * xa
                };
                let res = mix(row1) * (1.0 - ya) + mix(row2) * ya;
                data.push(saturate_u8(res) / 255.0);
            }
        }
        Image::new(width, height, 1, data)
    }
}

/// The two tile indices around pixel `i` and the weight of the second:
/// `f = i / tile - 0.5`, tiles `floor(f)` and `floor(f) + 1` clamped to the grid.
fn neighbours(i: usize, tile: usize, tiles: usize) -> (usize, usize, f32) {
    let f = i as f32 / tile as f32 - 0.5;
    let t1 = f.floor();
    let weight = f - t1;
    let t1 = t1 as isize;
    let first = t1.max(0) as usize;
    let second = ((t1 + 1) as usize).min(tiles - 1);
    (first, second, weight)
}

/// OpenCV's `saturate_cast<uchar>(float)`: round half to even, then clamp.
fn saturate_u8(v: f32) -> f32 {
    v.round_ties_even().clamp(0.0, 255.0)
}

/// Clips every bin at `limit` and redistributes the excess as OpenCV does:
/// evenly over all bins, then one more count every `max(256 / residual, 1)`
/// bins from bin 0 until the residual is spent.
fn clip_histogram(hist: &mut [u32; 256], limit: u32) {
    let mut clipped = 0;
    for bin in hist.iter_mut() {
        if *bin > limit {
            clipped += *bin - limit;
            *bin = limit;
        }
    }
    let batch = clipped / 256;
    let mut residual = clipped - batch * 256;
    for bin in hist.iter_mut() {
        *bin += batch;
    }
    if residual > 0 {
        let step = (256 / residual as usize).max(1);
        for bin in hist.iter_mut().step_by(step) {
            if residual == 0 {
                break;
            }
            *bin += 1;
            residual -= 1;
        }
    }
}

/// `lut[i] = saturate(cdf[i] * (255 / area))`, the scale computed in f32 as OpenCV.
fn lut_from_histogram(hist: &[u32; 256], area: usize) -> [u8; 256] {
    let scale = 255.0 / area as f32;
    let mut lut = [0u8; 256];
    let mut sum = 0u32;
    for (out, &count) in lut.iter_mut().zip(hist) {
        sum += count;
        *out = saturate_u8(sum as f32 * scale) as u8;
    }
    lut
}

/// Gamma correction `out = in^(1 / gamma)`, inputs clamped to `[0, 1]` first
/// (the classic protocol applies `((i / 255)^(1 / gamma)) * 255` by table).
///
/// # Panics
///
/// If `gamma` is not finite and positive (a protocol constant, not user data).
pub fn gamma(image: &Image, gamma: f32) -> Image {
    assert!(
        gamma.is_finite() && gamma > 0.0,
        "gamma must be finite and positive, got {gamma}"
    );
    let inv = 1.0 / gamma;
    let data = image
        .data
        .iter()
        .map(|&v| v.clamp(0.0, 1.0).powf(inv))
        .collect();
    Image::new(image.width, image.height, image.channels, data)
}

/// The retina protocol on a training set, in place: [`luminance`],
/// [`standardize`] over the whole slice, [`clahe`] (clip 2, 8x8 tiles) and
/// [`gamma`] 1.2. Returns the standardisation `(mean, std)` for
/// [`retina_protocol_with`].
///
/// # Errors
///
/// [`Error::Invalid`] if an image is smaller than 8x8 (CLAHE's tile grid);
/// the images are then left partly processed.
pub fn retina_protocol(images: &mut [Image]) -> Result<(f32, f32)> {
    for image in images.iter_mut() {
        *image = luminance(image);
    }
    let stats = standardize(images);
    for image in images.iter_mut() {
        *image = clahe_gamma(image)?;
    }
    Ok(stats)
}

/// The retina protocol on one image with given statistics (a test image gets
/// the training set's `mean` and `std`).
///
/// # Errors
///
/// [`Error::Invalid`] if the image is smaller than 8x8.
pub fn retina_protocol_with(image: &Image, mean: f32, std: f32) -> Result<Image> {
    let mut grey = luminance(image);
    apply_standardization(&mut grey, mean, std);
    clahe_gamma(&grey)
}

fn clahe_gamma(image: &Image) -> Result<Image> {
    let equalised = clahe(
        image,
        RETINA_CLAHE_CLIP,
        RETINA_CLAHE_TILES,
        RETINA_CLAHE_TILES,
    )?;
    Ok(gamma(&equalised, RETINA_GAMMA))
}

/// CT windowing: clamps to `[lo, hi]` and maps linearly to `[0, 1]`.
///
/// # Errors
///
/// [`Error::Invalid`] if `lo >= hi` or either is not finite.
pub fn window_hu(image: &Image, lo: f32, hi: f32) -> Result<Image> {
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return Err(Error::invalid(
            "CT window",
            format!("expected finite lo < hi, got [{lo}, {hi}]"),
        ));
    }
    let data = image
        .data
        .iter()
        .map(|&v| (v.clamp(lo, hi) - lo) / (hi - lo))
        .collect();
    Ok(Image::new(image.width, image.height, image.channels, data))
}

/// Bilinear resize with half-pixel centres (as `cv2.resize` `INTER_LINEAR`),
/// any channel count; the same size returns a copy.
///
/// # Panics
///
/// If `image` is empty and the target is not.
pub fn resize_image(image: &Image, width: usize, height: usize) -> Image {
    let (w, h, c) = (image.width, image.height, image.channels);
    if width * height == 0 {
        return Image::new(width, height, c, Vec::new());
    }
    assert!(
        w * h > 0,
        "cannot resize an empty {w}x{h} image to {width}x{height}"
    );
    let xs: Vec<_> = (0..width).map(|x| linear_source(x, w, width)).collect();
    let mut data = Vec::with_capacity(width * height * c);
    for y in 0..height {
        let (y0, y1, fy) = linear_source(y, h, height);
        for &(x0, x1, fx) in &xs {
            for ch in 0..c {
                let at = |x: usize, y: usize| image.data[(y * w + x) * c + ch];
                let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
                let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
                data.push(top * (1.0 - fy) + bottom * fy);
            }
        }
    }
    Image::new(width, height, c, data)
}

/// Source pixels and weight of the second for output index `i`:
/// `s = (i + 0.5) * src / dst - 0.5`, clamped to the image.
fn linear_source(i: usize, src: usize, dst: usize) -> (usize, usize, f32) {
    let s = ((i as f32 + 0.5) * src as f32 / dst as f32 - 0.5).clamp(0.0, (src - 1) as f32);
    let s0 = s.floor() as usize;
    (s0, (s0 + 1).min(src - 1), s - s0 as f32)
}

/// Nearest-neighbour resize (pixel centres), so labels stay 0/1.
///
/// # Panics
///
/// If `mask` is empty and the target is not.
pub fn resize_mask(mask: &Mask, width: usize, height: usize) -> Mask {
    let (w, h) = (mask.width, mask.height);
    if width * height == 0 {
        return Mask::new(width, height, Vec::new());
    }
    assert!(
        w * h > 0,
        "cannot resize an empty {w}x{h} mask to {width}x{height}"
    );
    // Integer form of floor((i + 0.5) * src / dst), exact for any size.
    let nearest = |i: usize, src: usize, dst: usize| ((2 * i + 1) * src / (2 * dst)).min(src - 1);
    let xs: Vec<usize> = (0..width).map(|x| nearest(x, w, width)).collect();
    let data = (0..height)
        .flat_map(|y| {
            let row = nearest(y, h, height) * w;
            xs.iter().map(move |&x| mask.data[row + x])
        })
        .collect();
    Mask::new(width, height, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(width: usize, height: usize, levels: &[u8]) -> Image {
        Image::new(
            width,
            height,
            1,
            levels.iter().map(|&l| f32::from(l) / 255.0).collect(),
        )
    }

    fn levels(image: &Image) -> Vec<u8> {
        image.data.iter().map(|&v| quantize(v)).collect()
    }

    #[test]
    fn luminance_uses_bt601_weights() {
        // 0.299 * 1 for pure red; equal channels keep their value.
        let rgb = Image::new(2, 1, 3, vec![1.0, 0.0, 0.0, 0.5, 0.5, 0.5]);
        let out = luminance(&rgb);
        assert_eq!(out.channels, 1);
        assert!((out.data[0] - 0.299).abs() < 1e-6);
        assert!((out.data[1] - 0.5).abs() < 1e-6);
        let one = Image::new(2, 1, 1, vec![0.1, 0.2]);
        assert_eq!(luminance(&one), one);
        assert_eq!(green(&rgb).data, vec![0.0, 0.5]);
    }

    #[test]
    fn standardize_uses_dataset_statistics_then_per_image_min_max() {
        // Values 0..8: mean 3.5, population variance
        // 2 * (3.5² + 2.5² + 1.5² + 0.5²) / 8 = 5.25.
        let mut images = [
            Image::new(4, 1, 1, vec![0.0, 1.0, 2.0, 3.0]),
            Image::new(4, 1, 1, vec![4.0, 5.0, 6.0, 7.0]),
            Image::filled(2, 2, 1, 3.5),
        ];
        let (mean, std) = standardize(&mut images[..2]);
        assert!((mean - 3.5).abs() < 1e-6);
        assert!((std - 5.25f32.sqrt()).abs() < 1e-6);
        for image in &images[..2] {
            for (v, e) in image.data.iter().zip([0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]) {
                assert!((v - e).abs() < 1e-6, "{:?}", image.data);
            }
        }
        // A constant image becomes all 0.
        apply_standardization(&mut images[2], mean, std);
        assert_eq!(images[2].data, vec![0.0; 4]);
    }

    #[test]
    fn clahe_one_tile_clips_and_redistributes() {
        // 4x4, one tile: area 16, limit max(1, (2 * 16 / 256) as int) = 1.
        // Counts 0:8, 100:4, 200:4 are clipped to 1 each: excess 7 + 3 + 3 = 13,
        // batch 13 / 256 = 0, residual 13, step 256 / 13 = 19, so bins
        // 0, 19, 38, ..., 228 (13 bins) get +1. cdf(0) = 2, cdf(100) = 2 + 5
        // (19..95) + 1 = 8, cdf(200) = 8 + 5 (114..190) + 1 = 14.
        // LUT = round(cdf * 255 / 16): 31.875 -> 32, 127.5 -> 128, 223.125 -> 223.
        let mut px = vec![0u8; 8];
        px.extend([100; 4]);
        px.extend([200; 4]);
        let out = clahe(&grey(4, 4, &px), 2.0, 1, 1).unwrap();
        let mut expected = vec![32u8; 8];
        expected.extend([128; 4]);
        expected.extend([223; 4]);
        assert_eq!(levels(&out), expected);
    }

    #[test]
    fn clahe_constant_image() {
        // 4x4 of level 128, limit 1: hist[128] = 1, excess 15, step 256 / 15 = 17,
        // bins 0, 17, ..., 238 get +1; 8 of them (0..119) are below 128, so
        // cdf(128) = 8 + 1 = 9 and round(9 * 255 / 16 = 143.4375) = 143.
        let image = grey(4, 4, &[128; 16]);
        assert_eq!(levels(&clahe(&image, 2.0, 1, 1).unwrap()), vec![143; 16]);
        // Limit (256 * 16 / 256) = 16 never clips: plain equalisation maps to 255.
        assert_eq!(levels(&clahe(&image, 256.0, 1, 1).unwrap()), vec![255; 16]);
    }

    #[test]
    fn clahe_without_clipping_is_histogram_equalisation() {
        // Four levels, 4 pixels each; limit (64 * 16 / 256) = 4 clips nothing.
        // cdf 4, 8, 12, 16 -> round(cdf * 255 / 16) = 63.75 -> 64, 127.5 -> 128,
        // 191.25 -> 191, 255.
        let px: Vec<u8> = [0u8, 64, 128, 255].iter().flat_map(|&l| [l; 4]).collect();
        let out = clahe(&grey(4, 4, &px), 64.0, 1, 1).unwrap();
        let expected: Vec<u8> = [64u8, 128, 191, 255].iter().flat_map(|&l| [l; 4]).collect();
        assert_eq!(levels(&out), expected);
    }

    #[test]
    fn clahe_two_by_two_tiles_interpolate_between_centres() {
        // 8x8 image, 2x2 tiles of 4x4 (area 16, limit 16: no clipping).
        // Tile (0,0): rows 0-1 level 100, rows 2-3 level 50 -> LUT[50] = round(8 * 255/16) = 128.
        // Tile (1,0): rows 0-2 level 20, row 3 level 200 -> LUT[20] = LUT[50] = round(12 * 255/16) = 191.
        // Bottom tiles: all 0 -> LUT[v] = 255 for every v.
        let mut px = vec![0u8; 64];
        for y in 0..4 {
            for x in 0..4 {
                px[y * 8 + x] = if y < 2 { 100 } else { 50 };
                px[y * 8 + 4 + x] = if y < 3 { 20 } else { 200 };
            }
        }
        let out = levels(&clahe(&grey(8, 8, &px), 256.0, 2, 2).unwrap());
        // (2, 2) and (6, 2) are tile centres: f = 2/4 - 0.5 = 0 and 6/4 - 0.5 = 1, weight 0.
        assert_eq!(out[2 * 8 + 2], 128);
        assert_eq!(out[2 * 8 + 6], 191);
        // (3, 2): fx = 0.25, fy = 0: 0.75 * 128 + 0.25 * 191 = 143.75 -> 144.
        assert_eq!(out[2 * 8 + 3], 144);
        // (3, 3): fy = 0.25 too: 0.75 * 143.75 + 0.25 * 255 = 171.5625 -> 172.
        assert_eq!(out[3 * 8 + 3], 172);
    }

    #[test]
    fn clahe_pads_by_reflection_like_opencv() {
        // 3x1 image, 2x1 tiles: 3 % 2 != 0, so OpenCV pads x by 2 - 1 = 1 and y by
        // 1 - 0 = 1: padded 4x2, tiles 2x2 px. Padded column 3 reflects to 1, row 1
        // to row 0. Tile 0 = {0, 100} x2, tile 1 = {200, 100} x2; limit 4, no clip.
        // x=0: f=-0.5 -> tile 0 only, LUT0[0] = round(2 * 63.75 = 127.5) = 128 (ties to even);
        // x=1: f=0 -> LUT0[100] = 255; x=2: f=0.5 -> (LUT0[200] + LUT1[200]) / 2 = 255.
        let out = clahe(&grey(3, 1, &[0, 100, 200]), 256.0, 2, 1).unwrap();
        assert_eq!(levels(&out), vec![128, 255, 255]);
        assert_eq!(reflect101(-1, 5), 1);
        assert_eq!(reflect101(5, 5), 3);
        assert_eq!(reflect101(7, 3), 1);
    }

    #[test]
    fn clahe_rejects_bad_parameters() {
        let image = grey(4, 4, &[0; 16]);
        assert!(clahe(&Image::filled(4, 4, 3, 0.0), 2.0, 1, 1).is_err());
        assert!(clahe(&image, 2.0, 0, 1).is_err());
        assert!(clahe(&image, 2.0, 5, 1).is_err());
        assert!(clahe(&image, 0.0, 1, 1).is_err());
        assert!(clahe(&image, f32::NAN, 1, 1).is_err());
    }

    #[test]
    fn gamma_is_inverse_power() {
        // 0.25^(1/2) = 0.5; 0.5^(1/1.2) = exp(-ln 2 / 1.2) = 0.561231.
        let out = gamma(&Image::new(4, 1, 1, vec![0.0, 0.25, 1.0, 0.5]), 2.0);
        for (v, e) in out.data.iter().zip([0.0, 0.5, 1.0]) {
            assert!((v - e).abs() < 1e-6, "{:?}", out.data);
        }
        assert!((gamma(&Image::new(1, 1, 1, vec![0.5]), 1.2).data[0] - 0.561_231).abs() < 1e-5);
    }

    #[test]
    fn retina_protocol_matches_its_single_image_form() {
        let make = |seed: usize| {
            let data = (0..16 * 16 * 3)
                .map(|i| ((i * 37 + seed * 11) % 97) as f32 / 96.0)
                .collect();
            Image::new(16, 16, 3, data)
        };
        let originals = vec![make(1), make(2)];
        let mut images = originals.clone();
        let (mean, std) = retina_protocol(&mut images).unwrap();
        for (done, original) in images.iter().zip(&originals) {
            assert_eq!(done.channels, 1);
            assert!(done.data.iter().all(|v| (0.0..=1.0).contains(v)));
            assert_eq!(*done, retina_protocol_with(original, mean, std).unwrap());
        }
        assert!(retina_protocol(&mut [Image::filled(4, 4, 3, 0.5)]).is_err());
    }

    #[test]
    fn window_hu_clamps_and_scales() {
        // (v + 1000) / 1400: -300 -> 0.5; outside the window saturates.
        let image = Image::new(4, 1, 1, vec![-2000.0, -1000.0, -300.0, 1000.0]);
        let out = window_hu(&image, HU_WINDOW.0, HU_WINDOW.1).unwrap();
        assert_eq!(out.data, vec![0.0, 0.0, 0.5, 1.0]);
        assert!(window_hu(&image, 1.0, 1.0).is_err());
        assert!(window_hu(&image, f32::NEG_INFINITY, 1.0).is_err());
    }

    #[test]
    fn resize_same_size_is_identity() {
        let data = (0..5 * 3 * 3).map(|i| i as f32 / 44.0).collect();
        let image = Image::new(5, 3, 3, data);
        assert_eq!(resize_image(&image, 5, 3), image);
        let mask = Mask::new(3, 2, vec![0, 1, 1, 0, 0, 1]);
        assert_eq!(resize_mask(&mask, 3, 2), mask);
    }

    #[test]
    fn resize_bilinear_uses_half_pixel_centres() {
        // [0, 1] to width 4: sources -0.25 (clamped 0), 0.25, 0.75, 1.25 (clamped 1),
        // as cv2.resize INTER_LINEAR gives.
        let out = resize_image(&Image::new(2, 1, 1, vec![0.0, 1.0]), 4, 1);
        assert_eq!(out.data, vec![0.0, 0.25, 0.75, 1.0]);
    }

    #[test]
    fn resize_mask_nearest_repeats_pixels() {
        let mask = Mask::new(2, 2, vec![1, 0, 0, 1]);
        let expected = vec![
            1, 1, 0, 0, //
            1, 1, 0, 0, //
            0, 0, 1, 1, //
            0, 0, 1, 1,
        ];
        assert_eq!(resize_mask(&mask, 4, 4).data, expected);
    }
}
