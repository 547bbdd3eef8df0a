//! Contrast-limited adaptive histogram equalisation (CLAHE) with OpenCV's
//! semantics, the retina protocol's contrast step. Written here because no
//! kept Rust image library implements OpenCV's CLAHE (clip rule, reflect-101
//! padding, tile interpolation) bit for bit.

use super::image::Image;
use crate::error::{Error, Result};

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
}
