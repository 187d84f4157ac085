//! Where a training step's time goes: runs a few steps of the ConvNet with
//! every dispatch timed on its own (`DARKMATTER_PROFILE=1`), then prints
//! the total per kernel, slowest first.
//!
//!     cargo run --release --example profile_step                     # VICReg, synthetic, batch 64, 2 steps
//!     cargo run --release --example profile_step -- fashion-mnist 256 3
//!     cargo run --release --example profile_step -- fashion-mnist 256 3 byol
//!
//! Timing each dispatch alone serialises the GPU, so the step is slower than
//! in training; the ranking is what this is for.

use std::time::Instant;

use darkmatter::Gpu;
use darkmatter::data::{Loader, LoaderConfig, Split};
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
    let method: Method = args.get(4).map_or(Ok(Method::Vicreg), |m| m.parse())?;

    let gpu = Gpu::new()?;
    println!("device: {}", gpu.describe());
    let mut config = TrainConfig::defaults(method, &data);
    config.batch_size = batch_size;
    let dataset = train::open_data(&data, Split::Train, &config)?;
    let arch = config.encoder.arch(dataset.channels());
    let mut objective = config.objective.build(&gpu, &arch, 0)?;
    let mut optimizer = config.build_optimizer()?;
    let augment = config.augmentation(dataset.channels())?;
    let spec = config.objective.input();
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
        let input = step::input(&gpu, spec, &batch, &augment, 0, i as u64)?;
        let mut ctx = step::StepContext {
            gpu: &gpu,
            objective: objective.as_mut(),
            optimizer: &mut optimizer,
            total_steps: steps as u64,
        };
        let losses = step::train_step(&mut ctx, &input, i as u64, config.lr())?.wait()?;
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
