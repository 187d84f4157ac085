//! The GPU augmentation pipeline against the CPU implementation of the same
//! pipeline, side by side: preset vicreg, two views of a batch of 256
//! synthetic 32x32 RGB images.
//!
//!     cargo bench --bench augment
//!
//! Both sides start from host bytes and draw the step's parameters. The GPU
//! side uploads the packed batch, records the dispatches and waits for them
//! (its views stay on the device, where training reads them); the CPU side,
//! one thread like a loader's worker, writes its views to host memory.
//! Criterion reports throughput in images; a summary line follows with the
//! median images/s of both, timed in alternation.

use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use darkmatter::Gpu;
use darkmatter::augment::{self, AugmentConfig, Preset, U8Batch, cpu};
use darkmatter::data::{Dataset, Split, SyntheticConfig, SyntheticDataset};

const BATCH: usize = 256;
const SHAPE: [usize; 4] = [BATCH, 32, 32, 3];

fn gpu_step(gpu: &Gpu, bytes: &[u8], config: &AugmentConfig, step: u64) {
    let batch = U8Batch::upload(gpu, bytes, SHAPE).unwrap();
    let views = augment::views(&batch, config, 0, step).unwrap();
    gpu.sync().unwrap();
    drop(views);
}

fn cpu_step(bytes: &[u8], config: &AugmentConfig, step: u64) -> [Vec<f32>; 2] {
    let params = augment::sample_params(config, 0, step, BATCH, (32, 32));
    cpu::views(bytes, SHAPE, config, &params).unwrap()
}

/// Median images per second of the GPU and the CPU pipeline, timed in
/// alternation so that both see the same load on a shared machine.
fn rates(gpu: &Gpu, bytes: &[u8], config: &AugmentConfig, rounds: u64) -> (f64, f64) {
    let mut times = (Vec::new(), Vec::new());
    for step in 0..rounds {
        let t = Instant::now();
        gpu_step(gpu, bytes, config, step);
        times.0.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        cpu_step(bytes, config, step);
        times.1.push(t.elapsed().as_secs_f64());
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        BATCH as f64 / v[v.len() / 2]
    };
    (median(times.0), median(times.1))
}

fn bench(c: &mut Criterion) {
    let gpu = Gpu::new().expect("an adapter (lavapipe on CPU-only machines)");
    let data = SyntheticDataset::new(SyntheticConfig::default(), Split::Train).unwrap();
    let bytes: Vec<u8> = (0..BATCH).flat_map(|i| data.image(i)).collect();
    let config = AugmentConfig::preset(Preset::Vicreg);
    // Compile the pipelines before anything is timed.
    gpu_step(&gpu, &bytes, &config, 0);

    let mut group = c.benchmark_group("augment");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut step = 0;
    group.bench_function(BenchmarkId::new("gpu", BATCH), |b| {
        b.iter(|| {
            step += 1;
            gpu_step(&gpu, &bytes, &config, step)
        })
    });
    group.bench_function(BenchmarkId::new("cpu", BATCH), |b| {
        b.iter(|| {
            step += 1;
            cpu_step(&bytes, &config, step)
        })
    });
    group.finish();

    let (gpu_rate, cpu_rate) = rates(&gpu, &bytes, &config, 15);
    println!(
        "augment vicreg, 2 views of {BATCH} x 32x32x3 on {}: GPU {gpu_rate:.0} images/s, \
         CPU (1 thread) {cpu_rate:.0} images/s, GPU/CPU {:.2}x",
        gpu.adapter_info().name,
        gpu_rate / cpu_rate
    );
}

// No plots: with the crate's plotters features unified into criterion's,
// its plotting backend looks for fonts the test machines lack and panics.
criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
