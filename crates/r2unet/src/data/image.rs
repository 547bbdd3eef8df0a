//! In-memory images and masks: the plain types every loader returns and every
//! preprocessing step takes. Row-major, channels interleaved (`y * w + x`).

/// A float image, `channels` values per pixel, row-major and interleaved.
///
/// Loaders scale 8-bit and 16-bit images to `[0, 1]`; CT slices keep their
/// Hounsfield-like values until windowed.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Values per pixel (1 grey, 3 RGB).
    pub channels: usize,
    /// `height * width * channels` values.
    pub data: Vec<f32>,
}

impl Image {
    /// A `width x height` image of `channels` channels filled with `value`.
    pub fn filled(width: usize, height: usize, channels: usize, value: f32) -> Self {
        Self {
            width,
            height,
            channels,
            data: vec![value; width * height * channels],
        }
    }

    /// Wraps `data`.
    ///
    /// # Panics
    ///
    /// If `data.len() != width * height * channels`.
    pub fn new(width: usize, height: usize, channels: usize, data: Vec<f32>) -> Self {
        assert_eq!(
            data.len(),
            width * height * channels,
            "{width}x{height}x{channels} image needs {} values, got {}",
            width * height * channels,
            data.len()
        );
        Self {
            width,
            height,
            channels,
            data,
        }
    }

    /// Number of pixels.
    pub fn pixels(&self) -> usize {
        self.width * self.height
    }

    /// Value of channel `c` at `(x, y)`.
    pub fn get(&self, x: usize, y: usize, c: usize) -> f32 {
        self.data[(y * self.width + x) * self.channels + c]
    }

    /// One channel as a single-channel image.
    ///
    /// # Panics
    ///
    /// If `c >= channels`.
    pub fn channel(&self, c: usize) -> Image {
        assert!(c < self.channels, "channel {c} of {}", self.channels);
        let data = self
            .data
            .chunks_exact(self.channels)
            .map(|px| px[c])
            .collect();
        Image::new(self.width, self.height, 1, data)
    }
}

/// A binary mask (labels or field of view): one byte per pixel, 0 or 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height * width` values, each 0 or 1.
    pub data: Vec<u8>,
}

impl Mask {
    /// A mask of `value` (0 or 1) everywhere.
    pub fn filled(width: usize, height: usize, value: u8) -> Self {
        Self {
            width,
            height,
            data: vec![value; width * height],
        }
    }

    /// Wraps `data`.
    ///
    /// # Panics
    ///
    /// If `data.len() != width * height` or a value is not 0 or 1.
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Self {
        assert_eq!(data.len(), width * height, "{width}x{height} mask size");
        assert!(data.iter().all(|&v| v <= 1), "mask values must be 0 or 1");
        Self {
            width,
            height,
            data,
        }
    }

    /// Value at `(x, y)`.
    pub fn get(&self, x: usize, y: usize) -> u8 {
        self.data[y * self.width + x]
    }

    /// Number of pixels set to 1.
    pub fn count(&self) -> usize {
        self.data.iter().map(|&v| v as usize).sum()
    }
}
