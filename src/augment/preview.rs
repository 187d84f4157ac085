//! A grid of images and their two augmented views, as the network sees them
//! (normalisation undone): what `darkmatter augment` and every training run
//! write, so a user sees what each preset keeps and destroys.

use std::path::Path;

use super::{AugmentConfig, U8Batch, views};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// Pixels between cells, before zooming.
const GAP: usize = 1;

/// Rows of [original | view 1 | view 2] for the first `count` images of
/// `dataset`, views drawn for training step `step` under `seed`, upscaled
/// `zoom` times with nearest-neighbour sampling.
pub fn preview_grid(
    gpu: &Gpu,
    dataset: &dyn Dataset,
    config: &AugmentConfig,
    count: usize,
    seed: u64,
    step: u64,
    zoom: usize,
) -> Result<image::RgbImage> {
    if count == 0 || zoom == 0 || zoom > 32 {
        return Err(Error::invalid(
            "augment",
            "the grid needs at least 1 image and a zoom in 1..=32",
        ));
    }
    config.validate()?;
    let count = count.min(dataset.len());
    let (h, w, c) = (dataset.height(), dataset.width(), dataset.channels());
    let (oh, ow) = config.output_size(h, w);
    let images: Vec<u8> = (0..count).flat_map(|i| dataset.image(i)).collect();
    let batch = U8Batch::upload(gpu, &images, [count, h, w, c])?;
    let [a, b] = views(&batch, config, seed, step)?;
    let views = [a.to_vec()?, b.to_vec()?];

    let (mean, std) = config.normalize.for_channels(c);
    let cell = (h.max(oh) + GAP, w.max(ow) + GAP);
    let (rows, cols) = (count * cell.0 + GAP, 3 * cell.1 + GAP);
    let mut grid = vec![[48u8; 3]; rows * cols];
    for img in 0..count {
        let top = img * cell.0 + GAP;
        let original = &images[img * h * w * c..(img + 1) * h * w * c];
        for y in 0..h {
            for x in 0..w {
                let px = &original[(y * w + x) * c..(y * w + x + 1) * c];
                grid[(top + y) * cols + GAP + x] = [0, 1, 2].map(|k| px[k.min(c - 1)]);
            }
        }
        for (v, view) in views.iter().enumerate() {
            let left = (v + 1) * cell.1 + GAP;
            let planes = &view[img * c * oh * ow..(img + 1) * c * oh * ow];
            for y in 0..oh {
                for x in 0..ow {
                    let value = |k: usize| {
                        let k = k.min(c - 1);
                        let unit = planes[(k * oh + y) * ow + x] * std[k] + mean[k];
                        (unit.clamp(0.0, 1.0) * 255.0).round() as u8
                    };
                    grid[(top + y) * cols + left + x] = [0, 1, 2].map(value);
                }
            }
        }
    }
    let too_big = || Error::invalid("augment", "the grid is too large for a PNG");
    let width = u32::try_from(cols * zoom).map_err(|_| too_big())?;
    let height = u32::try_from(rows * zoom).map_err(|_| too_big())?;
    Ok(image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb(grid[(y as usize / zoom) * cols + x as usize / zoom])
    }))
}

/// Writes `image` as a PNG, naming the path on failure.
pub fn save_png(image: &image::RgbImage, path: &Path) -> Result<()> {
    image
        .save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| Error::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
}
