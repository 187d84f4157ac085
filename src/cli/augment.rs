//! `darkmatter augment`: a PNG grid of images and their two augmented views,
//! so a user sees what the network will see.

use std::path::PathBuf;

use clap::Args;

use crate::augment::{self, AugmentConfig, Preset};
use crate::data::{self, Split};
use crate::{Gpu, Result};

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

pub fn run(args: &AugmentArgs) -> Result<()> {
    let preset: Preset = args.preset.parse()?;
    let dataset = data::open(&args.data, Split::Train)?;
    let mut config = AugmentConfig::preset(preset);
    if let Some(side) = args.size {
        config = config.with_output(side, side);
    }
    let gpu = Gpu::new()?;
    let count = args.count.min(dataset.len());
    let grid = augment::preview_grid(
        &gpu,
        dataset.as_ref(),
        &config,
        count,
        args.seed,
        args.step,
        args.zoom,
    )?;
    augment::save_png(&grid, &args.out)?;
    println!(
        "wrote {} ({}x{}): {count} rows of [original | view 1 | view 2], \
         preset {preset}, seed {}, step {}",
        args.out.display(),
        grid.width(),
        grid.height(),
        args.seed,
        args.step
    );
    Ok(())
}
