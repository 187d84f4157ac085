//! Where a training step's time goes: runs a few VICReg steps of the ConvNet
//! with every dispatch timed on its own (`DARKMATTER_PROFILE=1`), then
//! prints the total per kernel, slowest first.
//!
//!     cargo run --release --example profile_step                     # synthetic, batch 64, 2 steps
//!     cargo run --release --example profile_step -- fashion-mnist 256 3
//!
//! Timing each dispatch alone serialises the GPU, so the step is slower than
//! in training; the ranking is what this is for.

use std::time::Instant;

use darkmatter::Gpu;
use darkmatter::augment::{AugmentConfig, Preset};
use darkmatter::data::{Loader, LoaderConfig, Split};
use darkmatter::optim::{Optimizer, Rule};
use darkmatter::train::{self, Method, TrainConfig, step};

fn main() -> darkmatter::Result<()> {
    if std::env::var_os("DARKMATTER_PROFILE").is_none() {
        // SAFETY: set before any other thread starts.
        unsafe { std::env::set_var("DARKMATTER_PROFILE", "1") };
    }
    let args: Vec<String> = std::env::args().collect();
    let data = args.get(1).cloned().unwrap_or_else(|| "synthetic".into());
    let batch_size: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    let steps: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2);

    let gpu = Gpu::new()?;
    println!("device: {}", gpu.describe());
    let mut config = TrainConfig::defaults(Method::Vicreg, &data);
    config.batch_size = batch_size;
    let dataset = train::open_data(&data, Split::Train, &config)?;
    let (enc, proj) = train::architectures(&config, dataset.channels());
    let mut encoder = enc.build(&gpu, 0)?;
    let mut projector = proj.build(&gpu, 1)?;
    let mut optimizer = Optimizer::new(Rule::from_name(&config.optimizer)?, config.weight_decay);
    let mut augment = AugmentConfig::preset(config.augment.parse::<Preset>()?);
    augment.normalize = train::features::normalize_for(&data, dataset.channels());
    let loader = Loader::new(
        dataset,
        LoaderConfig {
            batch_size,
            seed: 0,
            shuffle: true,
            drop_last: true,
        },
    )?;
    for (i, batch) in loader.epoch(0).take(steps).enumerate() {
        let start = Instant::now();
        let mut ctx = step::StepContext {
            gpu: &gpu,
            config: &config,
            augment: &augment,
            encoder: encoder.as_mut(),
            projector: projector.as_mut(),
            optimizer: &mut optimizer,
        };
        let losses = step::train_step(&mut ctx, &batch, i as u64, config.lr())?.wait()?;
        println!(
            "step {i}: {:.2} s, loss {:.4}",
            start.elapsed().as_secs_f64(),
            losses.loss
        );
    }
    println!("\n{:<40} {:>7} {:>10}", "kernel", "calls", "seconds");
    for (kernel, calls, seconds) in gpu.profile() {
        println!("{kernel:<40} {calls:>7} {seconds:>10.3}");
    }
    Ok(())
}
