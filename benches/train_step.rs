//! One training step of the ConvNet encoder on a batch of 32 x 32 RGB
//! synthetic images: upload, two GPU augmented views, forward, fused loss,
//! backward and AdamW update, submitted once and waited for. VICReg with a
//! 128-512-512-512 projector is the step `benches/pytorch_reference.py`
//! times in PyTorch; the other methods run their defaults. Throughput is
//! in images.
//!
//!     cargo bench --bench train_step
//!     cargo bench --bench train_step -- byol
//!
//! Ids: `train_step/convnet/256` (VICReg; the step the augmentation
//! benchmark `augment/gpu/256` is compared against) and
//! `train_step/<method>/256` for the others; the video methods'
//! `train_step/<pixel|jepa>/32clips` is a step of their default run: 32
//! moving-shapes clips, two context frames and a rollout of four, 32 x 32
//! (throughput in clips).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use darkmatter::Gpu;
use darkmatter::data::open_video;
use darkmatter::data::{Loader, LoaderConfig, Split};
use darkmatter::objectives::{InputSpec, Objective, StepInput};
use darkmatter::optim::Optimizer;
use darkmatter::train::{self, Method, TrainConfig, step, video_eval};

fn bench(c: &mut Criterion) {
    let gpu = Gpu::new().expect("an adapter (install mesa-vulkan-drivers for lavapipe)");
    let batch_size = 256;
    let mut group = c.benchmark_group("train_step");
    group.sample_size(10);
    group.throughput(Throughput::Elements(batch_size as u64));
    // The image methods: a video step reads clips, not a batch of images.
    for method in Method::ALL.into_iter().filter(|m| !m.is_video()) {
        let mut config = TrainConfig::defaults(method, "synthetic");
        config.batch_size = batch_size;
        config.synthetic_train = batch_size * 2;
        // The size benches/pytorch_reference.py uses (the default run's is 16).
        config.synthetic_size = 32;
        // The preset benches/pytorch_reference.py's augmentation cost stands for.
        config.augment = "vicreg".into();
        let data = train::open_data("synthetic", Split::Train, &config).unwrap();
        let mut objective = config.objective_for(&gpu, data.as_ref()).unwrap();
        let mut optimizer = config.build_optimizer().unwrap();
        let augment = config.augmentation(data.channels()).unwrap();
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
        let spec = config.objective.input();
        let name = match method {
            Method::Vicreg => "convnet".to_string(),
            other => other.name().to_string(),
        };
        let mut step_index = 0;
        group.bench_function(format!("{name}/{batch_size}"), |b| {
            b.iter(|| {
                let input = step::input(&gpu, spec, &batch, &augment, 0, step_index).unwrap();
                one_step(
                    &gpu,
                    objective.as_mut(),
                    &mut optimizer,
                    &input,
                    &mut step_index,
                )
            })
        });
    }
    group.finish();
    video(c, &gpu);
}

/// One step on `input`, waited for.
fn one_step(
    gpu: &Gpu,
    objective: &mut dyn Objective,
    optimizer: &mut Optimizer,
    input: &StepInput,
    step_index: &mut u64,
) -> step::StepLosses {
    let mut ctx = step::StepContext {
        gpu,
        objective,
        optimizer,
        total_steps: 1000,
        dist: None,
    };
    let pending = step::train_step(&mut ctx, input, *step_index, 1e-3).unwrap();
    *step_index += 1;
    pending.wait().unwrap()
}

/// A step of each video method's default run.
fn video(c: &mut Criterion, gpu: &Gpu) {
    let clips = 32;
    let mut group = c.benchmark_group("train_step");
    group.sample_size(10);
    group.throughput(Throughput::Elements(clips as u64));
    for method in Method::ALL.into_iter().filter(|m| m.is_video()) {
        let mut config = TrainConfig::defaults(method, "moving-shapes");
        let [train, _] = open_video(&config.data, 0).unwrap();
        let size = train.config().size;
        let arch = config.encoder.arch(1);
        config.objective.fit_images(&arch, size, size).unwrap();
        let mut objective = config.objective.build(gpu, &arch, 0).unwrap();
        let mut optimizer = config.build_optimizer().unwrap();
        let InputSpec::Clip { context, rollout } = config.objective.input() else {
            unreachable!("a video method reads clips")
        };
        let batch: Vec<_> = (0..clips).map(|i| train.clip(i)).collect();
        let refs: Vec<_> = batch.iter().collect();
        let mut step_index = 0;
        group.bench_function(format!("{method}/{clips}clips"), |b| {
            b.iter(|| {
                let frames = (0..context + rollout)
                    .map(|t| video_eval::frame_batch(gpu, &refs, t, size).unwrap())
                    .collect();
                let input = StepInput::frames(frames);
                one_step(
                    gpu,
                    objective.as_mut(),
                    &mut optimizer,
                    &input,
                    &mut step_index,
                )
            })
        });
    }
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
