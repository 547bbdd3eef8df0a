//! Single-pass inference: the whole image, reflect-padded to a multiple of
//! `2^(depth-1)`, through the fully convolutional model at once.

use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};

use crate::data::Image;
use crate::model::UNet;

/// Index `i` of an axis of length `n` reflected at the borders (`-1` → `1`, `n` → `n-2`).
fn reflect(i: isize, n: usize) -> usize {
    let n = n as isize;
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let m = i.rem_euclid(period);
    (if m < n { m } else { period - m }) as usize
}

/// `image` grown to `width x height` (at least its own size) by reflection,
/// as CHW planes; the original sits at the top-left corner.
pub fn reflect_pad(image: &Image, width: usize, height: usize) -> Vec<f32> {
    let (w, h, c) = (image.width, image.height, image.channels);
    let (width, height) = (width.max(w), height.max(h));
    let mut out = Vec::with_capacity(c * width * height);
    for ch in 0..c {
        for y in 0..height {
            let sy = reflect(y as isize, h);
            for x in 0..width {
                out.push(image.data[(sy * w + reflect(x as isize, w)) * c + ch]);
            }
        }
    }
    out
}

/// The probability map (sigmoid of the first output channel) of `image`, same size.
///
/// # Panics
///
/// If the image's channels differ from the model's input channels.
pub fn predict_single_pass(model: &UNet, image: &Image, device: &Device) -> Image {
    let m = model.config.size_multiple();
    let (w, h) = (image.width, image.height);
    let (pw, ph) = (w.div_ceil(m) * m, h.div_ceil(m) * m);
    let data = reflect_pad(image, pw, ph);
    let x = Tensor::<4>::from_data(TensorData::new(data, [1, image.channels, ph, pw]), device);
    let probs = sigmoid(model.forward(x).narrow(1, 0, 1));
    let values: Vec<f32> = probs
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("converted to f32");
    let cropped = (0..h)
        .flat_map(|y| values[y * pw..y * pw + w].iter().copied())
        .collect();
    Image::new(w, h, 1, cropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_indices_by_hand() {
        // Axis [a b c]: ... c b | a b c | b a ...
        let got: Vec<usize> = (-2..5).map(|i| reflect(i, 3)).collect();
        assert_eq!(got, vec![2, 1, 0, 1, 2, 1, 0]);
        assert_eq!(reflect(5, 1), 0);
    }

    #[test]
    fn padding_keeps_the_image_in_the_corner() {
        let img = Image::new(3, 2, 1, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let padded = reflect_pad(&img, 4, 4);
        // Rows 0,1 then reflected rows 0 (y=2 -> 0), 1 (y=3 -> 1); column 3 -> 1.
        assert_eq!(
            padded,
            vec![
                1.0, 2.0, 3.0, 2.0, 4.0, 5.0, 6.0, 5.0, 1.0, 2.0, 3.0, 2.0, 4.0, 5.0, 6.0, 5.0
            ]
        );
    }
}
