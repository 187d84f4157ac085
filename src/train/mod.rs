//! `darkmatter train`: self-supervised training end to end — data, GPU
//! augmentation, the objective's parts and loss on the tape, fused
//! optimiser update, per-epoch evaluation, metrics, checkpoints and plots.

pub mod checkpoint;
pub mod config;
pub mod features;
pub mod finetune;
pub mod metrics;
pub mod plots;
pub mod reconstruction;
mod report;
pub mod rundir;
pub mod step;
pub mod video;
pub mod video_eval;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::augment::AugmentConfig;
use crate::data::{self, Dataset, Loader, LoaderConfig, Split, SyntheticConfig, SyntheticDataset};
use crate::dist::{self as distributed, Dist};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::objectives::Objective;
use crate::optim::{Optimizer, WarmupCosine};

pub use crate::objectives::Method;
pub use config::{EncoderKind, TrainConfig};
pub use features::Evaluation;
pub use metrics::EpochRecord;

/// Opens a data spec's split; `synthetic` gets the run's size.
pub fn open_data(spec: &str, split: Split, config: &TrainConfig) -> Result<Arc<dyn Dataset>> {
    if spec == "synthetic" {
        let cfg = SyntheticConfig {
            size: config.synthetic_size,
            scale: config.synthetic_scale,
            train_len: config.synthetic_train,
            test_len: (config.synthetic_train / 4).max(1),
            ..SyntheticConfig::default()
        };
        return Ok(Arc::new(SyntheticDataset::new(cfg, split)?));
    }
    Ok(data::open(spec, split)?)
}

/// What a finished run reports.
#[derive(Debug)]
pub struct Summary {
    /// The random-init encoder's evaluation (a fresh run only).
    pub baseline: Option<Evaluation>,
    pub last: EpochRecord,
}

/// A training run in progress.
pub struct Trainer {
    gpu: Gpu,
    config: TrainConfig,
    out: PathBuf,
    /// Held for the whole run: the directory's lock (rank 0's alone in a
    /// distributed run).
    _dir: Option<rundir::RunDir>,
    /// The group a distributed run spans.
    dist: Option<Dist>,
    train: Arc<dyn Dataset>,
    test: Arc<dyn Dataset>,
    objective: Box<dyn Objective>,
    optimizer: Optimizer,
    augment: AugmentConfig,
    normalize: crate::augment::Normalize,
    /// The first epoch still to run (0-based) and the step count so far.
    epoch: u32,
    step: u64,
    /// Epochs after which to stop early (the schedule is unchanged).
    stop_after: Option<u32>,
    /// The last evaluation's reconstructions, for the picture.
    sample: Option<reconstruction::Sample>,
    quiet: bool,
}

/// What may change when a run is resumed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Extension {
    /// A new total of epochs, at least the epochs already done: extends a
    /// finished run (the learning-rate schedule is recomputed for the new
    /// length).
    pub epochs: Option<u32>,
}

impl Extension {
    /// Gives `config`, of a run in `out` that has done `done` epochs, the
    /// new total of epochs, if any; fewer than `done` is an error.
    pub(crate) fn apply(self, config: &mut TrainConfig, done: u32, out: &Path) -> Result<()> {
        if let Some(epochs) = self.epochs {
            if epochs < done {
                return Err(Error::invalid(
                    "train",
                    format!(
                        "--epochs {epochs} is fewer than the {done} epochs the run in {} has done",
                        out.display()
                    ),
                ));
            }
            config.epochs = epochs;
        }
        Ok(())
    }
}

/// A saved objective and its optimiser state, checked: a trained
/// parameter without state would restart its moments from zero, and the
/// run would silently differ from an uninterrupted one.
pub(crate) fn restore(
    objective: Box<dyn Objective>,
    optimizer: &mut Optimizer,
    step: u64,
    state: Vec<(String, crate::tensor::Tensor)>,
    out: &Path,
) -> Result<Box<dyn Objective>> {
    optimizer.load_state(step, state)?;
    if step > 0 {
        for part in objective.parts() {
            if part.role != crate::objectives::Role::Trained {
                continue;
            }
            for (name, _) in part.module.parameters() {
                let full = format!("{}.{name}", part.name);
                if !optimizer.has_state(&full) {
                    return Err(Error::invalid(
                        "resume",
                        format!(
                            "{}: the checkpoint holds no optimiser state for {full}",
                            out.display()
                        ),
                    ));
                }
            }
        }
    }
    Ok(objective)
}

/// The learning-rate schedule of `config` for `per_epoch` steps an epoch.
pub(crate) fn schedule_for(config: &TrainConfig, per_epoch: u64) -> WarmupCosine {
    WarmupCosine {
        base: config.lr(),
        warmup_steps: (config.warmup_epochs as f64 * per_epoch as f64).round() as u64,
        total_steps: per_epoch * config.epochs as u64,
        final_fraction: 0.001,
    }
}

/// The progress bar of epoch `epoch` (0-based) of `config`'s run
/// (hidden: none drawn).
pub(crate) fn epoch_bar(
    hidden: bool,
    per_epoch: u64,
    epoch: u32,
    config: &TrainConfig,
) -> Result<ProgressBar> {
    if hidden {
        return Ok(ProgressBar::hidden());
    }
    let b = ProgressBar::new(per_epoch);
    b.set_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}")
            .map_err(|e| Error::invalid("train", e.to_string()))?
            .progress_chars("=> "),
    );
    b.set_prefix(format!("{}/{}", epoch + 1, config.epochs));
    Ok(b)
}

impl Trainer {
    /// Prepares a fresh run in `out`, checking every input before anything
    /// is written. A directory that already holds a run is refused unless
    /// `overwrite`, which removes that run's files.
    pub fn new(gpu: &Gpu, config: TrainConfig, out: &Path, overwrite: bool) -> Result<Trainer> {
        Trainer::new_distributed(gpu, config, out, overwrite, None)
    }

    /// [`Trainer::new`] for one rank of a distributed run (`dist`): the
    /// global batch (`config.batch_size`) is split over the ranks, and only
    /// rank 0 claims `out`, prints, evaluates and writes.
    pub fn new_distributed(
        gpu: &Gpu,
        config: TrainConfig,
        out: &Path,
        overwrite: bool,
        dist: Option<Dist>,
    ) -> Result<Trainer> {
        let leads = distributed::leads(dist.as_ref());
        Trainer::prepare(gpu, config, out, dist, |out| {
            leads
                .then(|| rundir::RunDir::fresh(out, overwrite))
                .transpose()
        })
    }

    fn prepare(
        gpu: &Gpu,
        config: TrainConfig,
        out: &Path,
        dist: Option<Dist>,
        claim: impl FnOnce(&Path) -> Result<Option<rundir::RunDir>>,
    ) -> Result<Trainer> {
        config.validate()?;
        if let Some(d) = &dist
            && !config.batch_size.is_multiple_of(d.size())
        {
            return Err(Error::invalid(
                "train",
                format!(
                    "the batch of {} cannot be split evenly over {} ranks: choose a --batch-size that is a multiple of {}",
                    config.batch_size,
                    d.size(),
                    d.size()
                ),
            ));
        }
        let train = open_data(&config.data, Split::Train, &config)?;
        let test = open_data(&config.data, Split::Test, &config)?;
        data::check_splits(train.as_ref(), test.as_ref())?;
        if config.batch_size > train.len() {
            return Err(Error::invalid(
                "train",
                format!(
                    "batch size {} is larger than the dataset ({} images)",
                    config.batch_size,
                    train.len()
                ),
            ));
        }
        let mut config = config;
        let objective = config.objective_for(gpu, train.as_ref())?;
        let normalize = features::normalize_for(&config.data, train.channels());
        let augment = config.augmentation(train.channels())?;
        let dir = claim(out)?;
        Ok(Trainer {
            gpu: gpu.clone(),
            optimizer: config.build_optimizer()?,
            config,
            out: out.to_path_buf(),
            _dir: dir,
            dist,
            train,
            test,
            objective,
            augment,
            normalize,
            epoch: 0,
            step: 0,
            stop_after: None,
            sample: None,
            quiet: false,
        })
    }

    /// Continues the run saved in `out`: same configuration, modules,
    /// optimiser state and position, so the metrics match an uninterrupted
    /// run; `extension` may give it more epochs.
    pub fn resume(gpu: &Gpu, out: &Path, extension: Extension) -> Result<Trainer> {
        Trainer::resume_distributed(gpu, out, extension, None)
    }

    /// [`Trainer::resume`] for one rank of a distributed run: every rank
    /// reads the checkpoint, rank 0 alone holds the directory. The number
    /// of ranks may differ from the run's before (the global batch, and so
    /// the run, stays the same).
    pub fn resume_distributed(
        gpu: &Gpu,
        out: &Path,
        extension: Extension,
        dist: Option<Dist>,
    ) -> Result<Trainer> {
        let leads = distributed::leads(dist.as_ref());
        let dir = leads.then(|| rundir::RunDir::existing(out)).transpose()?;
        let saved = checkpoint::load(gpu, out)?;
        gpu.preset_tuning(&saved.kernels);
        let mut config = saved.config.clone();
        extension.apply(&mut config, saved.epoch, out)?;
        let mut t = Trainer::prepare(gpu, config, out, dist, |_| Ok(dir))?;
        if saved.encoder_arch != t.config.encoder.arch(t.train.channels()) {
            return Err(Error::invalid(
                "resume",
                "the checkpoint's encoder does not match its configuration",
            ));
        }
        t.objective = restore(
            saved.objective,
            &mut t.optimizer,
            saved.step,
            saved.optimizer_state,
            out,
        )?;
        t.epoch = saved.epoch;
        t.step = saved.step;
        if leads {
            metrics::truncate(&out.join("metrics.jsonl"), saved.epoch)?;
        }
        Ok(t)
    }

    /// Stops after `epochs` epochs of the run, as if interrupted.
    pub fn stop_after(mut self, epochs: Option<u32>) -> Trainer {
        self.stop_after = epochs;
        self
    }

    /// No progress bars or per-epoch lines (tests).
    pub fn quiet(mut self) -> Trainer {
        self.quiet = true;
        self
    }

    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    fn steps_per_epoch(&self) -> u64 {
        (self.train.len() / self.config.batch_size) as u64
    }

    fn schedule(&self) -> WarmupCosine {
        schedule_for(&self.config, self.steps_per_epoch())
    }

    /// Representations of the evaluation subsets, then every evaluation.
    pub fn evaluate(&mut self) -> Result<(Evaluation, crate::tensor::Tensor)> {
        let tr = features::subset(self.train.len(), self.config.eval_train_images);
        let te = features::subset(self.test.len(), self.config.eval_test_images);
        let bs = self.config.batch_size;
        let a = features::representations(
            &self.gpu,
            self.objective.encoder(),
            &self.train,
            &tr,
            self.normalize,
            bs,
        )?;
        let b = features::representations(
            &self.gpu,
            self.objective.encoder(),
            &self.test,
            &te,
            self.normalize,
            bs,
        )?;
        let mut e = features::evaluate(&self.train, &tr, &a, &self.test, &te, &b)?;
        let measured = reconstruction::measure(
            &self.gpu,
            self.objective.as_mut(),
            self.config.objective.input(),
            self.config.objective.norm_pix(),
            &self.test,
            self.normalize,
        )?;
        if let Some((quality, sample)) = measured {
            e.reconstruction = Some(quality);
            self.sample = Some(sample);
        }
        Ok((e, b))
    }

    fn leads(&self) -> bool {
        distributed::leads(self.dist.as_ref())
    }

    /// The group, when the run spans more than one rank.
    fn spread(&self) -> Option<&Dist> {
        self.dist.as_ref().filter(|d| d.size() > 1)
    }

    /// Every rank waits here until rank 0 has finished what it does alone.
    fn rendezvous(&self) -> Result<()> {
        match self.spread() {
            Some(d) => d.group.barrier(),
            None => Ok(()),
        }
    }

    /// Every rank takes rank 0's parameters and running statistics (with
    /// `buffers_only`, its running statistics alone).
    fn broadcast_state(&self, buffers_only: bool) -> Result<()> {
        let Some(d) = self.spread() else {
            return Ok(());
        };
        for part in self.objective.parts() {
            let mut entries = Vec::new();
            part.module.visit(part.name, &mut entries);
            for (_, entry) in entries {
                let t = match entry {
                    crate::nn::Entry::Param(p) if !buffers_only => &p.tensor,
                    crate::nn::Entry::Buffer(t) => t,
                    _ => continue,
                };
                let mut values = t.to_vec()?;
                d.group.broadcast(&mut values)?;
                if !d.is_leader() {
                    t.write(&values)?;
                }
            }
        }
        Ok(())
    }

    /// Checks that every rank holds the same parameters and running
    /// statistics, bit for bit (a fingerprint of each, gathered).
    fn check_replicas(&self) -> Result<()> {
        let Some(d) = self.spread() else {
            return Ok(());
        };
        if !d.sync_bn {
            // Each rank's running statistics followed its own shard: rank
            // 0's are kept, as PyTorch's DistributedDataParallel does.
            self.broadcast_state(true)?;
        }
        let mut h = distributed::FINGERPRINT_START;
        for part in self.objective.parts() {
            let mut entries = Vec::new();
            part.module.visit(part.name, &mut entries);
            for (_, entry) in entries {
                let values = match entry {
                    crate::nn::Entry::Param(p) => p.tensor.to_vec()?,
                    crate::nn::Entry::Buffer(t) => t.to_vec()?,
                    crate::nn::Entry::Counter(c) => vec![c.get() as f32],
                };
                h = distributed::fingerprint(&values, h);
            }
        }
        let all = d.group.all_gather_u64(&[h])?;
        if let Some(r) = all.iter().position(|&x| x != all[0]) {
            return Err(Error::invalid(
                "train",
                format!(
                    "after step {} the parameters of rank {r} differ from rank 0's: the replicas diverged",
                    self.step
                ),
            ));
        }
        Ok(())
    }

    fn say(&self, line: &str) {
        if !self.quiet && self.leads() {
            println!("{line}");
        }
    }

    /// Runs the remaining epochs; evaluates the random-init encoder first on
    /// a fresh run, so the gain is visible.
    pub fn run(mut self) -> Result<Summary> {
        if self.leads() {
            let path = self.out.join("config.json");
            crate::files::write_atomic(&path, self.config.to_json()?.as_bytes())
                .map_err(|e| checkpoint::io(&path, e))?;
        }
        self.say(&self.config.describe());
        if let Some(d) = self.spread() {
            self.say(&format!(
                "{} ranks, {} images each of the global batch of {} | batch norm {}",
                d.size(),
                self.config.batch_size / d.size(),
                self.config.batch_size,
                if d.sync_bn {
                    "synchronised over the ranks"
                } else {
                    "per rank"
                }
            ));
        }
        self.say(&format!(
            "device {} | {} train / {} test images of {}x{}x{}",
            self.gpu.describe(),
            self.train.len(),
            self.test.len(),
            self.train.height(),
            self.train.width(),
            self.train.channels()
        ));
        if self.train.num_classes().is_none() {
            self.say(&format!(
                "{} has no labels: the kNN and the linear probe are skipped; the collapse monitors remain",
                self.train.name()
            ));
        }
        self.broadcast_state(false)?;
        let baseline = if self.epoch == 0 && self.leads() {
            let (b, _) = self.evaluate()?;
            self.say(&format!("random-init encoder: {}", b.accuracy_line()));
            Some(b)
        } else if self.epoch == 0 {
            None
        } else {
            self.say(&format!(
                "resuming after epoch {} (step {})",
                self.epoch, self.step
            ));
            None
        };
        self.rendezvous()?;
        let mut loader = Loader::new(
            self.train.clone(),
            LoaderConfig {
                batch_size: self.config.batch_size,
                seed: self.config.seed,
                shuffle: true,
                drop_last: true,
            },
        )?;
        if let Some(d) = self.spread() {
            loader = loader.shard(d.rank(), d.size())?;
        }
        let ranks = self.spread().map_or(1, Dist::size);
        let schedule = self.schedule();
        let per_epoch = self.steps_per_epoch();
        let total_steps = schedule.total_steps;
        let spec = self.config.objective.input();
        let mut log = if self.leads() {
            Some(metrics::MetricsLog::open(&self.out.join("metrics.jsonl"))?)
        } else {
            None
        };
        let mut last = None;
        let end = self
            .stop_after
            .map_or(self.config.epochs, |s| s.min(self.config.epochs));
        for epoch in self.epoch..end {
            let hidden = self.quiet || !self.leads();
            let bar = epoch_bar(hidden, per_epoch, epoch, &self.config)?;
            let start = Instant::now();
            let mut pending: Option<step::PendingLosses> = None;
            let mut images = 0usize;
            for batch in loader.epoch(epoch as u64) {
                let lr = schedule.at(self.step);
                let input = step::input(
                    &self.gpu,
                    spec,
                    &batch,
                    &self.augment,
                    self.config.seed,
                    self.step,
                )?;
                let mut ctx = step::StepContext {
                    gpu: &self.gpu,
                    objective: self.objective.as_mut(),
                    optimizer: &mut self.optimizer,
                    total_steps,
                    dist: self.dist.clone(),
                };
                let next = step::train_step(&mut ctx, &input, self.step, lr)?;
                self.step += 1;
                images += batch.len() * ranks;
                // Read the previous step's losses while this one runs.
                if let Some(p) = pending.replace(next) {
                    let losses = p.wait()?;
                    bar.set_message(metrics::progress_message(&losses, images, start));
                    if let Some(log) = &mut log {
                        log.step(epoch, &losses)?;
                    }
                }
                bar.inc(1);
            }
            if let Some(p) = pending.take() {
                let losses = p.wait()?;
                if let Some(log) = &mut log {
                    log.step(epoch, &losses)?;
                }
            }
            let train_seconds = start.elapsed().as_secs_f64();
            bar.finish_and_clear();
            self.check_replicas()?;
            let Some(log) = &mut log else {
                // Rank 0 evaluates and writes; the others wait for it.
                self.epoch = epoch + 1;
                self.rendezvous()?;
                last = Some(EpochRecord {
                    epoch: epoch + 1,
                    step: self.step,
                    loss: f32::NAN,
                    images_per_s: images as f64 / train_seconds.max(1e-9),
                    evaluation: Evaluation::default(),
                });
                continue;
            };
            // The losses read so far were computed before the last update:
            // look at what it left before evaluating or saving anything.
            self.check_finite()?;
            let (evaluation, test_features) = self.evaluate()?;
            self.epoch = epoch + 1;
            let record = EpochRecord {
                epoch: epoch + 1,
                step: self.step,
                loss: log.last_loss(),
                images_per_s: images as f64 / train_seconds.max(1e-9),
                evaluation,
            };
            log.epoch(&record)?;
            self.say(&record.line());
            checkpoint::save(self.checkpoint_state())?;
            report::write_all(
                &self.out,
                log,
                &self.test,
                &test_features,
                &self.augment,
                &self.train,
            )?;
            if let Some(sample) = &self.sample {
                let grid = reconstruction::picture(sample, 8, 4);
                crate::augment::save_png(&grid, &self.out.join("reconstructions.png"))?;
            }
            self.rendezvous()?;
            last = Some(record);
        }
        let last = last.ok_or_else(|| Error::invalid("train", "no epoch left to run"))?;
        Ok(Summary { baseline, last })
    }

    /// Every parameter and running statistic of every part is finite, or
    /// an error naming the first that is not and the step, before the
    /// epoch's checkpoint replaces the last good one.
    fn check_finite(&self) -> Result<()> {
        for part in self.objective.parts() {
            let mut entries = Vec::new();
            part.module.visit(part.name, &mut entries);
            for (name, entry) in entries {
                let values = match entry {
                    crate::nn::Entry::Param(p) => p.tensor.to_vec()?,
                    crate::nn::Entry::Buffer(t) => t.to_vec()?,
                    crate::nn::Entry::Counter(_) => continue,
                };
                if let Some(v) = values.iter().find(|v| !v.is_finite()) {
                    return Err(Error::invalid(
                        "train",
                        format!(
                            "training diverged by step {}: {name} holds {v}; nothing was saved for epoch {} (the checkpoint of epoch {} is kept); try a lower --lr",
                            self.step,
                            self.epoch + 1,
                            self.epoch
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn checkpoint_state(&self) -> checkpoint::State<'_> {
        checkpoint::State {
            dir: &self.out,
            config: &self.config,
            objective: self.objective.as_ref(),
            optimizer: &self.optimizer,
            epoch: self.epoch,
            step: self.step,
            normalize: self.normalize,
            kernels: self.gpu.tuning(),
            image_size: (self.train.height(), self.train.width()),
        }
    }
}
