//! darkmatter's training step against PyTorch's on the same machine, side
//! by side in one run: one VICReg step of the ConvNet and a
//! 128-512-512-512 projector on 256 RGB images of 32 x 32 (two augmented
//! views, forward, backward, AdamW), the median of 5 after a warm-up (which
//! also measures the kernel variants the first time), then
//! `python3 benches/pytorch_reference.py` (the same step in PyTorch on the
//! CPU's cores), then the ratio of images per second.
//!
//!     cargo run --release --example vs_pytorch
//!     OMP_NUM_THREADS=1 cargo run --release --example vs_pytorch   # PyTorch on one thread

use std::process::Command;
use std::time::Instant;

use darkmatter::Gpu;
use darkmatter::data::{Loader, LoaderConfig, Split};
use darkmatter::train::{self, Method, TrainConfig, step};

fn main() -> darkmatter::Result<()> {
    let gpu = Gpu::new()?;
    let batch_size = 256;
    let mut config = TrainConfig::defaults(Method::Vicreg, "synthetic");
    config.batch_size = batch_size;
    config.synthetic_train = batch_size * 2;
    config.synthetic_size = 32;
    config.augment = "vicreg".into();
    let data = train::open_data("synthetic", Split::Train, &config)?;
    let mut objective = config.objective_for(&gpu, data.as_ref())?;
    let mut optimizer = config.build_optimizer()?;
    let augment = config.augmentation(data.channels())?;
    let loader = Loader::new(
        data,
        LoaderConfig {
            batch_size,
            seed: 0,
            shuffle: true,
            drop_last: true,
        },
    )?;
    let batch = loader.epoch(0).next().expect("one batch");
    let spec = config.objective.input();
    let mut times = Vec::new();
    for i in 0..6u64 {
        let start = Instant::now();
        let input = step::input(&gpu, spec, &batch, &augment, 0, i)?;
        let mut ctx = step::StepContext {
            gpu: &gpu,
            objective: objective.as_mut(),
            optimizer: &mut optimizer,
            total_steps: 100,
            dist: None,
        };
        step::train_step(&mut ctx, &input, i, 1e-3)?.wait()?;
        if i > 0 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let ours = times[times.len() / 2];
    println!(
        "darkmatter on {}: {:.0} ms per step, {:.0} images/s",
        gpu.describe(),
        ours * 1e3,
        batch_size as f64 / ours
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/pytorch_reference.py");
    let out = Command::new("python3").arg(script).output();
    let text = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).to_string(),
        Ok(o) => {
            eprintln!(
                "PyTorch reference failed: {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            return Ok(());
        }
        Err(e) => {
            eprintln!("python3 did not run ({e}); pip install torch to compare");
            return Ok(());
        }
    };
    print!("{text}");
    let theirs = text
        .split_whitespace()
        .zip(text.split_whitespace().skip(1))
        .find(|(_, unit)| *unit == "ms")
        .and_then(|(ms, _)| ms.parse::<f64>().ok())
        .map(|ms| ms / 1e3);
    if let Some(theirs) = theirs {
        println!(
            "darkmatter / PyTorch images/s: {:.3}x (PyTorch {:.1}x faster)",
            theirs / ours,
            ours / theirs
        );
    }
    Ok(())
}
