//! Patch augmentation: flips, 90-degree rotations (the label and FOV move with
//! the image) and small brightness/contrast jitter (image only).

use rand::Rng;

/// Which augmentations to draw per patch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Augment {
    /// Random horizontal and vertical flips.
    pub flips: bool,
    /// Random rotation by 0, 90, 180 or 270 degrees.
    pub rotations: bool,
    /// Brightness shift drawn from `[-b, b]` (image values are about [0, 1]).
    pub brightness: f32,
    /// Contrast factor drawn from `[1 - c, 1 + c]`, around the patch mean.
    pub contrast: f32,
}

impl Augment {
    /// No augmentation (validation, tests).
    pub const NONE: Augment = Augment {
        flips: false,
        rotations: false,
        brightness: 0.0,
        contrast: 0.0,
    };
}

impl Default for Augment {
    /// Flips, rotations, ±0.05 brightness and ±10% contrast.
    fn default() -> Self {
        Self {
            flips: true,
            rotations: true,
            brightness: 0.05,
            contrast: 0.1,
        }
    }
}

/// A square `side x side` plane, row-major.
fn transform_plane(
    plane: &[f32],
    side: usize,
    flip_x: bool,
    flip_y: bool,
    quarter_turns: u8,
) -> Vec<f32> {
    let mut out = vec![0.0; plane.len()];
    for y in 0..side {
        for x in 0..side {
            // Where (x, y) of the output comes from: undo the rotation, then the flips.
            let (mut sx, mut sy) = (x, y);
            for _ in 0..quarter_turns {
                (sx, sy) = (sy, side - 1 - sx);
            }
            if flip_x {
                sx = side - 1 - sx;
            }
            if flip_y {
                sy = side - 1 - sy;
            }
            out[y * side + x] = plane[sy * side + sx];
        }
    }
    out
}

impl Augment {
    /// Augments one patch in place: `image` holds `channels` planes of
    /// `side x side` (CHW), `masks` are `side x side` planes moved alike.
    pub fn apply(
        &self,
        rng: &mut impl Rng,
        side: usize,
        image: &mut [f32],
        masks: &mut [&mut Vec<f32>],
    ) {
        let flip_x = self.flips && rng.random_bool(0.5);
        let flip_y = self.flips && rng.random_bool(0.5);
        let turns = if self.rotations {
            rng.random_range(0..4u8)
        } else {
            0
        };
        if flip_x || flip_y || turns > 0 {
            for plane in image.chunks_exact_mut(side * side) {
                let moved = transform_plane(plane, side, flip_x, flip_y, turns);
                plane.copy_from_slice(&moved);
            }
            for mask in masks.iter_mut() {
                **mask = transform_plane(mask, side, flip_x, flip_y, turns);
            }
        }
        if self.brightness > 0.0 || self.contrast > 0.0 {
            let shift = if self.brightness > 0.0 {
                rng.random_range(-self.brightness..=self.brightness)
            } else {
                0.0
            };
            let factor = if self.contrast > 0.0 {
                rng.random_range(1.0 - self.contrast..=1.0 + self.contrast)
            } else {
                1.0
            };
            let mean = image.iter().sum::<f32>() / image.len().max(1) as f32;
            image
                .iter_mut()
                .for_each(|v| *v = (*v - mean) * factor + mean + shift);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2x2 plane [a b; c d] = [0 1; 2 3].
    const P: [f32; 4] = [0.0, 1.0, 2.0, 3.0];

    #[test]
    fn flips_and_rotations_by_hand() {
        assert_eq!(
            transform_plane(&P, 2, true, false, 0),
            vec![1.0, 0.0, 3.0, 2.0]
        );
        assert_eq!(
            transform_plane(&P, 2, false, true, 0),
            vec![2.0, 3.0, 0.0, 1.0]
        );
        // A quarter turn of [0 1; 2 3] (either sense) then four make the identity.
        let once = transform_plane(&P, 2, false, false, 1);
        assert_ne!(once, P.to_vec());
        let mut four = P.to_vec();
        for _ in 0..4 {
            four = transform_plane(&four, 2, false, false, 1);
        }
        assert_eq!(four, P.to_vec());
        // A rotation keeps the multiset of values.
        let mut sorted = once.clone();
        sorted.sort_by(f32::total_cmp);
        assert_eq!(sorted, P.to_vec());
    }

    #[test]
    fn masks_move_with_the_image() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let side = 5;
        for _ in 0..20 {
            let mut image: Vec<f32> = (0..side * side).map(|i| i as f32).collect();
            let mut mask: Vec<f32> = image
                .iter()
                .map(|&v| if v == 7.0 { 1.0 } else { 0.0 })
                .collect();
            let aug = Augment {
                brightness: 0.0,
                contrast: 0.0,
                ..Augment::default()
            };
            aug.apply(&mut rng, side, &mut image, &mut [&mut mask]);
            let at = mask.iter().position(|&m| m == 1.0).unwrap();
            assert_eq!(image[at], 7.0);
        }
    }

    #[test]
    fn jitter_keeps_order_and_stays_small() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut image = vec![0.2, 0.4, 0.6, 0.8];
        let only_jitter = Augment {
            flips: false,
            rotations: false,
            ..Augment::default()
        };
        only_jitter.apply(&mut rng, 2, &mut image, &mut []);
        assert!(image.windows(2).all(|w| w[0] < w[1]));
        assert!((image[0] - 0.2).abs() < 0.1, "{image:?}");
    }
}
