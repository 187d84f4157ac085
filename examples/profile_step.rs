//! Where a training step's time goes: runs a few steps of the ConvNet with
//! every dispatch timed on its own (`DARKMATTER_PROFILE=1`), then prints
//! the total per kernel, slowest first.
//!
//!     cargo run --release --example profile_step                     # VICReg, synthetic, batch 64, 2 steps
//!     cargo run --release --example profile_step -- fashion-mnist 256 3
//!     cargo run --release --example profile_step -- fashion-mnist 256 3 byol
//!     cargo run --release --example profile_step -- synthetic:32 256 3   # the train_step bench's step
//!
//! Timing each dispatch alone serialises the GPU, so the step is slower than
//! in training; the ranking is what this is for. A first, unprofiled step
//! compiles the pipelines and measures the kernel variants.

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
    // `synthetic:32`: the synthetic shapes at 32 x 32 (the size of
    // benches/train_step.rs and benches/pytorch_reference.py).
    let spec = args.get(1).cloned().unwrap_or_else(|| "synthetic".into());
    let (data, size) = match spec.strip_prefix("synthetic:") {
        Some(side) => ("synthetic".to_string(), side.parse().ok()),
        None => (spec, None),
    };
    let batch_size: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    let steps: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2);
    let method: Method = args.get(4).map_or(Ok(Method::Vicreg), |m| m.parse())?;

    let gpu = Gpu::new()?;
    println!("device: {}", gpu.describe());
    let mut config = TrainConfig::defaults(method, &data);
    config.batch_size = batch_size;
    if let Some(side) = size {
        config.synthetic_size = side;
        config.augment = "vicreg".into();
    }
    let dataset = train::open_data(&data, Split::Train, &config)?;
    let mut objective = config.objective_for(&gpu, dataset.as_ref())?;
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
    // One warm-up step compiles the pipelines and measures the kernel
    // variants of every shape (the first time on this device); it is not
    // part of the profile.
    let mut total = 0.0;
    for (i, batch) in loader.epoch(0).take(steps + 1).enumerate() {
        if i == 1 {
            gpu.reset_profile();
            gpu.reset_peak();
        }
        let start = Instant::now();
        let input = step::input(&gpu, spec, &batch, &augment, 0, i as u64)?;
        let mut ctx = step::StepContext {
            gpu: &gpu,
            objective: objective.as_mut(),
            optimizer: &mut optimizer,
            total_steps: steps as u64 + 1,
            dist: None,
        };
        let losses = step::train_step(&mut ctx, &input, i as u64, config.lr())?.wait()?;
        let seconds = start.elapsed().as_secs_f64();
        if i > 0 {
            total += seconds;
        }
        println!(
            "step {i}{}: {seconds:.2} s, loss {:.4}",
            if i == 0 { " (warm-up)" } else { "" },
            losses.loss
        );
    }
    let kernels = gpu.profile();
    let sum: f64 = kernels.iter().map(|k| k.2).sum();
    println!(
        "\n{steps} steps: {total:.2} s, of which {sum:.2} s in kernels; peak pool memory {:.0} MiB",
        gpu.pool_stats().peak_live_bytes as f64 / (1 << 20) as f64
    );
    println!("\n| kernel | calls | seconds | share |");
    println!("| --- | --- | --- | --- |");
    for (kernel, calls, seconds) in kernels {
        println!(
            "| {kernel} | {calls} | {seconds:.3} | {:.1}% |",
            100.0 * seconds / sum.max(1e-9)
        );
    }
    Ok(())
}
