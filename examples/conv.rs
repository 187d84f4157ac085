//! Every conv2d variant, forward and backward (input and weight gradients),
//! on the ConvNet's layer shapes and a ResNet-18 stage, as a GFLOP/s table.
//!
//!     cargo run --release --example conv            # batch 256 (128 for the ResNet stage)
//!     cargo run --release --example conv -- 32      # another batch size
//!     cargo run --release --example conv -- 256 implicit_gemm   # one variant
//!
//! Each figure is the median of several runs after a warm-up run: record the
//! dispatches, submit, wait for the device. 1 multiply-add = 2 flops; the
//! input gradient (dx) and the weight gradient (dw) each do the forward's
//! work, and `bwd` is both together.

use std::time::{Duration, Instant};

use darkmatter::kernels::conv2d::{
    ConvGeometry, ConvVariant, conv2d_backward_input, conv2d_backward_weight, conv2d_with,
};
use darkmatter::{Gpu, Tensor};

/// (name, channels in, channels out, size, stride) at 3x3, padding 1.
const SHAPES: [(&str, usize, usize, usize, usize); 6] = [
    ("convnet1_1x28", 1, 32, 28, 1),
    // The first layer on 32x32 RGB images (`train_step`, `vs_pytorch`).
    ("convnet1_3x32", 3, 32, 32, 1),
    ("convnet2_32x28", 32, 64, 28, 2),
    ("convnet3_64x14", 64, 128, 14, 2),
    ("convnet4_128x7", 128, 128, 7, 1),
    ("resnet_64x32", 64, 64, 32, 1),
];

/// The median time of `f`, or its error (a variant that does not fit the
/// device's limits at this size).
fn time(
    gpu: &Gpu,
    mut f: impl FnMut() -> darkmatter::Result<Tensor>,
) -> darkmatter::Result<Duration> {
    f()?;
    gpu.sync()?;
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < 3 || (start.elapsed() < Duration::from_secs(2) && samples.len() < 10) {
        let t = Instant::now();
        f()?;
        gpu.sync()?;
        samples.push(t.elapsed());
    }
    samples.sort();
    Ok(samples[samples.len() / 2])
}

fn main() -> darkmatter::Result<()> {
    let batch: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let only: Vec<ConvVariant> = std::env::args()
        .skip(2)
        .filter_map(|s| s.parse::<ConvVariant>().ok())
        .collect();
    let variants = if only.is_empty() {
        ConvVariant::ALL.to_vec()
    } else {
        only
    };
    let gpu = Gpu::new()?;
    println!("{}", gpu.describe());
    let (variants, absent): (Vec<ConvVariant>, Vec<ConvVariant>) =
        variants.into_iter().partition(|v| v.available(&gpu));
    for v in absent {
        println!("{}: not available on this device, left out", v.name());
    }
    println!("| shape (batch {batch}) | variant | fwd | dx | dw | bwd (dx + dw) |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, cin, cout, size, stride) in SHAPES {
        // The ResNet stage does 16x the work per image of a ConvNet layer.
        let n = if name.starts_with("resnet") {
            batch.min(128)
        } else {
            batch
        };
        let x = Tensor::full(&gpu, &[n, cin, size, size], 0.5)?;
        let w = Tensor::full(&gpu, &[cout, cin, 3, 3], 0.25)?;
        let g = ConvGeometry::new(x.shape(), w.shape(), stride, 1)?;
        let dy = Tensor::full(&gpu, &g.output_shape(), 0.1)?;
        let flops = 2.0 * g.macs() as f64;
        for &variant in &variants {
            let fwd = time(&gpu, || conv2d_with(variant, &x, &w, None, stride, 1));
            let dx = time(&gpu, || {
                conv2d_backward_input(variant, &dy, &w, x.shape(), stride, 1)
            });
            let dw = time(&gpu, || {
                conv2d_backward_weight(variant, &x, &dy, w.shape(), stride, 1)
            });
            // A pass over the device's limits prints its error's limit.
            let rate = |t: &darkmatter::Result<Duration>| match t {
                Ok(t) => format!("{:.2}", flops / t.as_secs_f64() / 1e9),
                Err(darkmatter::Error::Limit { limit, .. }) => format!("({limit})"),
                Err(e) => panic!("{e}"),
            };
            let bwd = match (&dx, &dw) {
                (Ok(dx), Ok(dw)) => format!("{:.2}", 2.0 * flops / (*dx + *dw).as_secs_f64() / 1e9),
                _ => "-".to_string(),
            };
            println!(
                "| {name} n={n} | {} | {} | {} | {} | {bwd} |",
                variant.name(),
                rate(&fwd),
                rate(&dx),
                rate(&dw),
            );
        }
    }
    Ok(())
}
