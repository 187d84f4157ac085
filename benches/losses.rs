//! Fused against unfused self-supervised losses, forward + backward, with ids
//! `<loss>/<fused|unfused>/<N>x<D>`. Where the unfused variant cannot bind
//! its D x D (or N x N) matrix within 128 MiB only the fused one runs. The
//! peak pool memory of one forward + backward is printed next to each id.
//!
//!     cargo bench --bench losses
//!     cargo bench --bench losses -- vicreg/fused     # a subset

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use darkmatter::loss::{self, BarlowConfig, InfoNceConfig, LossVariant, VicregConfig};
use darkmatter::{Gpu, GpuOptions, Tape, Tensor};

#[derive(Clone, Copy)]
enum Loss {
    Vicreg,
    InfoNce,
    Barlow,
}

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

fn inputs(gpu: &Gpu, n: usize, d: usize) -> (Tensor, Tensor) {
    let data: Vec<f32> = (0..n * d)
        .map(|k| ((k * 7919) % 1013) as f32 / 1013.0 - 0.5)
        .collect();
    let rev: Vec<f32> = data.iter().rev().copied().collect();
    (
        Tensor::from_slice(gpu, &data, &[n, d]).unwrap(),
        Tensor::from_slice(gpu, &rev, &[n, d]).unwrap(),
    )
}

fn bench_case(
    c: &mut Criterion,
    gpu: &Gpu,
    l: Loss,
    name: &str,
    n: usize,
    d: usize,
    fused_only: bool,
) {
    let (za, zb) = inputs(gpu, n, d);
    let variants: &[LossVariant] = if fused_only {
        &[LossVariant::Fused]
    } else {
        &LossVariant::ALL
    };
    for &v in variants {
        let id = format!("{name}/{}/{n}x{d}", v.name());
        gpu.sync().unwrap();
        gpu.reset_peak();
        step(gpu, l, v, &za, &zb).unwrap();
        let peak = gpu.pool_stats().peak_live_bytes as f64 / (1 << 20) as f64;
        eprintln!("{id}: peak pool memory {peak:.1} MiB");
        c.bench_function(&id, |bench| {
            bench.iter(|| step(gpu, l, v, &za, &zb).unwrap())
        });
        gpu.trim_pool();
    }
}

fn losses(c: &mut Criterion) {
    let gpu = Gpu::with_options(GpuOptions {
        max_storage_binding: Some(128 << 20),
        ..GpuOptions::default()
    })
    .expect("benchmarks need an adapter");
    for n in [256, 1024] {
        for d in [512, 2048] {
            bench_case(c, &gpu, Loss::Vicreg, "vicreg", n, d, false);
            bench_case(c, &gpu, Loss::Barlow, "barlow", n, d, false);
        }
    }
    bench_case(c, &gpu, Loss::Vicreg, "vicreg", 256, 8192, true);
    bench_case(c, &gpu, Loss::Barlow, "barlow", 256, 8192, true);
    for n in [256, 1024, 2048] {
        bench_case(c, &gpu, Loss::InfoNce, "infonce", n, 256, false);
    }
    bench_case(c, &gpu, Loss::InfoNce, "infonce", 4096, 256, true);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .without_plots()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = losses
}
criterion_main!(benches);
