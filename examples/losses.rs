//! The fused self-supervised losses against their unfused references,
//! forward + backward, side by side in one run: time and peak pool memory.
//!
//!     cargo run --release --example losses            # the README's table
//!     cargo run --release --example losses -- quick   # two small cases
//!
//! Each time is the median of a few runs after a warm-up, measured as:
//! record the forward and backward, submit, wait for the device. Peak memory
//! is the buffer pool's peak of live bytes during one forward + backward,
//! inputs included. Where the unfused variant cannot bind its D x D (or
//! N x N) matrix, its column says why.

use std::time::{Duration, Instant};

use darkmatter::loss::{self, BarlowConfig, InfoNceConfig, LossVariant, VicregConfig};
use darkmatter::{Gpu, GpuOptions, Tape, Tensor};

#[derive(Clone, Copy)]
enum Loss {
    Vicreg,
    InfoNce,
    Barlow,
}

impl Loss {
    fn name(self) -> &'static str {
        match self {
            Loss::Vicreg => "vicreg",
            Loss::InfoNce => "infonce",
            Loss::Barlow => "barlow",
        }
    }
}

/// One forward + backward; returns once the device has finished.
fn step(gpu: &Gpu, l: Loss, v: LossVariant, za: &Tensor, zb: &Tensor) -> darkmatter::Result<()> {
    let mut tape = Tape::new(gpu);
    let (a, b) = (tape.param(za)?, tape.param(zb)?);
    let out = match l {
        Loss::Vicreg => loss::vicreg(&mut tape, a, b, &VicregConfig::default(), v)?.loss,
        Loss::InfoNce => loss::infonce(&mut tape, a, b, &InfoNceConfig::default(), v)?,
        Loss::Barlow => loss::barlow_twins(&mut tape, a, b, &BarlowConfig::default(), v)?,
    };
    let grads = tape.backward(out)?;
    gpu.sync()?;
    drop(grads);
    Ok(())
}

/// (median time, peak MiB) or the error that stopped the variant.
fn measure(
    gpu: &Gpu,
    l: Loss,
    v: LossVariant,
    n: usize,
    d: usize,
) -> Result<(Duration, f64), String> {
    // Inputs drawn from a fixed pattern (no RNG needed for timing).
    let data: Vec<f32> = (0..n * d)
        .map(|k| ((k * 7919) % 1013) as f32 / 1013.0 - 0.5)
        .collect();
    let za = Tensor::from_slice(gpu, &data, &[n, d]).map_err(|e| e.to_string())?;
    let shifted: Vec<f32> = data.iter().rev().copied().collect();
    let zb = Tensor::from_slice(gpu, &shifted, &[n, d]).map_err(|e| e.to_string())?;
    gpu.sync().map_err(|e| e.to_string())?;
    gpu.reset_peak();
    step(gpu, l, v, &za, &zb).map_err(|e| e.to_string())?;
    let peak = gpu.pool_stats().peak_live_bytes as f64 / (1 << 20) as f64;
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < 3 || (start.elapsed() < Duration::from_secs(2) && samples.len() < 10) {
        let t = Instant::now();
        step(gpu, l, v, &za, &zb).map_err(|e| e.to_string())?;
        samples.push(t.elapsed());
    }
    samples.sort();
    gpu.trim_pool();
    Ok((samples[samples.len() / 2], peak))
}

fn main() -> darkmatter::Result<()> {
    // 128 MiB storage bindings, as many devices have.
    let gpu = Gpu::with_options(GpuOptions {
        max_storage_binding: Some(128 << 20),
        ..GpuOptions::default()
    })?;
    println!("device: {}\n", gpu.describe());
    let quick = std::env::args().any(|a| a == "quick");
    let mut cases = vec![(Loss::Vicreg, 256, 512), (Loss::InfoNce, 256, 256)];
    if !quick {
        cases = vec![
            (Loss::Vicreg, 256, 512),
            (Loss::Vicreg, 256, 2048),
            (Loss::Vicreg, 1024, 512),
            (Loss::Vicreg, 1024, 2048),
            (Loss::Vicreg, 256, 8192),
            (Loss::InfoNce, 256, 256),
            (Loss::InfoNce, 1024, 256),
            (Loss::InfoNce, 2048, 256),
            (Loss::InfoNce, 4096, 256),
            (Loss::Barlow, 256, 512),
            (Loss::Barlow, 256, 2048),
            (Loss::Barlow, 1024, 512),
            (Loss::Barlow, 1024, 2048),
            (Loss::Barlow, 256, 8192),
        ];
    }
    println!(
        "| loss | N x D | fused ms | fused peak MiB | unfused ms | unfused peak MiB | time fused/unfused | memory unfused/fused |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (l, n, d) in cases {
        let fused = measure(&gpu, l, LossVariant::Fused, n, d);
        let unfused = measure(&gpu, l, LossVariant::Unfused, n, d);
        let cell = |r: &Result<(Duration, f64), String>| match r {
            Ok((t, m)) => (format!("{:.1}", t.as_secs_f64() * 1e3), format!("{m:.1}")),
            Err(e) if e.contains("max_storage_buffer_binding_size") => {
                ("does not fit".into(), "> 128 MiB binding".into())
            }
            Err(e) => (format!("error: {e}"), "-".into()),
        };
        let ((ft, fm), (ut, um)) = (cell(&fused), cell(&unfused));
        let (rt, rm) = match (&fused, &unfused) {
            (Ok((a, am)), Ok((b, bm))) => (
                format!("{:.2}", a.as_secs_f64() / b.as_secs_f64()),
                format!("{:.1}x", bm / am),
            ),
            _ => ("-".into(), "-".into()),
        };
        println!(
            "| {} | {n} x {d} | {ft} | {fm} | {ut} | {um} | {rt} | {rm} |",
            l.name()
        );
    }
    Ok(())
}
