//! Preprocessing against reference implementations.

use r2unet::data::ReadLimits;
use r2unet::data::clahe::clahe;
use r2unet::data::io::read_image;

/// OpenCV 4.10 `createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply()` on
/// seeded synthetic images (`scripts/export_clahe_fixture.py`), one size that
/// divides into the tiles and one that OpenCV pads by reflection.
#[test]
fn clahe_matches_opencv() {
    let dir = super::fixtures().join("clahe");
    for size in ["64x56", "61x53"] {
        let input = read_image(&dir.join(format!("in_{size}.png")), ReadLimits::default()).unwrap();
        let expected =
            read_image(&dir.join(format!("out_{size}.png")), ReadLimits::default()).unwrap();
        let got = clahe(&input, 2.0, 8, 8).unwrap();
        let mut worst = 0i32;
        let mut differing = 0;
        for (g, e) in got.data.iter().zip(&expected.data) {
            let d = ((g * 255.0).round() as i32 - (e * 255.0).round() as i32).abs();
            worst = worst.max(d);
            differing += usize::from(d > 0);
        }
        eprintln!(
            "{size}: {differing} of {} pixels differ from OpenCV, by at most {worst}",
            got.data.len()
        );
        assert!(worst <= 1, "{size}: off by {worst} grey levels");
        assert!(
            differing * 100 <= got.data.len(),
            "{size}: {differing} pixels differ"
        );
    }
}
