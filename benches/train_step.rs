//! One VICReg training step of the ConvNet encoder and a 128-512-512-512
//! projector on a batch of 32 x 32 RGB synthetic images: upload, two GPU
//! augmented views, forward, fused loss, backward and AdamW update, submitted
//! once and waited for: the step `benches/pytorch_reference.py` times in
//! PyTorch. Throughput is in images.
//!
//!     cargo bench --bench train_step
//!
//! The id `train_step/convnet/256` is the step the augmentation benchmark
//! (`augment/gpu/256`) is compared against.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use darkmatter::Gpu;
use darkmatter::augment::{AugmentConfig, Preset};
use darkmatter::data::{Loader, LoaderConfig, Split};
use darkmatter::optim::{Optimizer, Rule};
use darkmatter::train::{self, Method, TrainConfig, step};

fn bench(c: &mut Criterion) {
    let gpu = Gpu::new().expect("an adapter (install mesa-vulkan-drivers for lavapipe)");
    let batch_size = 256;
    let mut config = TrainConfig::defaults(Method::Vicreg, "synthetic");
    config.batch_size = batch_size;
    config.synthetic_train = batch_size * 2;
    // The size benches/pytorch_reference.py uses (the default run's is 16).
    config.synthetic_size = 32;
    let data = train::open_data("synthetic", Split::Train, &config).unwrap();
    let (enc, proj) = train::architectures(&config, data.channels());
    let mut encoder = enc.build(&gpu, 0).unwrap();
    let mut projector = proj.build(&gpu, 1).unwrap();
    let mut optimizer = Optimizer::new(Rule::from_name("adamw").unwrap(), config.weight_decay);
    let mut augment = AugmentConfig::preset(Preset::Vicreg);
    augment.normalize = train::features::normalize_for("synthetic", data.channels());
    let loader = Loader::new(
        data,
        LoaderConfig {
            batch_size,
            seed: 0,
            shuffle: true,
            drop_last: true,
        },
    )
    .unwrap();
    let batch = loader.epoch(0).next().unwrap();

    let mut group = c.benchmark_group("train_step");
    group.sample_size(10);
    group.throughput(Throughput::Elements(batch_size as u64));
    let mut step_index = 0;
    group.bench_function(format!("convnet/{batch_size}"), |b| {
        b.iter(|| {
            let mut ctx = step::StepContext {
                gpu: &gpu,
                config: &config,
                augment: &augment,
                encoder: encoder.as_mut(),
                projector: projector.as_mut(),
                optimizer: &mut optimizer,
            };
            let pending = step::train_step(&mut ctx, &batch, step_index, 1e-3).unwrap();
            step_index += 1;
            pending.wait().unwrap()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // Plots off: the plot fonts of the crate's plotters build are not
    // registered in criterion's process.
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
