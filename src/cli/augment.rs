//! `darkmatter augment`: a PNG grid of images and their two augmented views,
//! so a user sees what the network will see.

use std::path::PathBuf;

use clap::Args;

use crate::augment::{self, AugmentConfig, Preset, U8Batch};
use crate::data::{self, Split};
use crate::{Error, Gpu, Result};

#[derive(Args, Debug)]
pub struct AugmentArgs {
    /// The images: synthetic, fashion-mnist[:DIR], mnist:DIR, cifar10:DIR or folder:DIR.
    #[arg(long)]
    pub data: String,
    /// vicreg, simclr, light, none or position-preserving.
    #[arg(long, default_value = "vicreg")]
    pub preset: String,
    /// Where to write the PNG grid.
    #[arg(long, default_value = "augment.png")]
    pub out: PathBuf,
    /// How many images (rows): the first ones of the training split.
    #[arg(long, default_value_t = 8)]
    pub count: usize,
    /// Seed of the augmentation's random parameters.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Training step whose parameters to draw (with --seed, replays a batch).
    #[arg(long, default_value_t = 0)]
    pub step: u64,
    /// Side of the square views in pixels (default: the images' size).
    #[arg(long)]
    pub size: Option<usize>,
    /// Upscaling of the grid, nearest neighbour, so small images are visible.
    #[arg(long, default_value_t = 4)]
    pub zoom: usize,
}

/// Pixels between cells, before zooming.
const GAP: usize = 1;

pub fn run(args: &AugmentArgs) -> Result<()> {
    let preset: Preset = args.preset.parse()?;
    let dataset = data::open(&args.data, Split::Train)
        .map_err(|e| Error::invalid("--data", e.to_string()))?;
    if args.count == 0 || args.zoom == 0 || args.zoom > 32 {
        return Err(Error::invalid(
            "augment",
            "--count must be at least 1 and --zoom in 1..=32",
        ));
    }
    let count = args.count.min(dataset.len());
    let (h, w, c) = (dataset.height(), dataset.width(), dataset.channels());
    let mut config = AugmentConfig::preset(preset);
    if let Some(side) = args.size {
        config = config.with_output(side, side);
    }
    config.validate()?;
    let (oh, ow) = config.output_size(h, w);

    let images: Vec<u8> = (0..count).flat_map(|i| dataset.image(i)).collect();
    let gpu = Gpu::new()?;
    let batch = U8Batch::upload(&gpu, &images, [count, h, w, c])?;
    let [a, b] = augment::views(&batch, &config, args.seed, args.step)?;
    let views = [a.to_vec()?, b.to_vec()?];

    // Undo the normalisation so the views show as the network's [0, 1] input.
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

    let zoom = args.zoom;
    let too_big = || Error::invalid("augment", "the grid is too large for a PNG");
    let width = u32::try_from(cols * zoom).map_err(|_| too_big())?;
    let height = u32::try_from(rows * zoom).map_err(|_| too_big())?;
    let png = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb(grid[(y as usize / zoom) * cols + x as usize / zoom])
    });
    png.save_with_format(&args.out, image::ImageFormat::Png)
        .map_err(|e| {
            Error::invalid("--out", format!("cannot write {}: {e}", args.out.display()))
        })?;
    println!(
        "wrote {} ({width}x{height}): {count} rows of [original | view 1 | view 2], \
         preset {preset}, seed {}, step {}",
        args.out.display(),
        args.seed,
        args.step
    );
    Ok(())
}
