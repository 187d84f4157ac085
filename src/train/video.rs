//! `darkmatter train` for video prediction: clips instead of images.
//!
//! The step is the image methods' (`step::train_step`: record, backward,
//! update, one submit); what differs is the input and the evaluation.
//! Each step takes a batch of clips and from each a window of
//! `2 + rollout` consecutive frames starting at a keyed random frame, and
//! hands the objective one `[N, 1, H, W]` tensor per time step. After each
//! epoch the predictor is evaluated on the test clips
//! ([`video_eval`](super::video_eval)): rollout error per horizon beside
//! copying the last frame and a blank frame, and the violation-of-
//! expectation accuracy per violation; the random-init model is evaluated
//! the same way before a fresh run's first step.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::video_eval::{self, VideoEvaluation};
use super::{Extension, TrainConfig, checkpoint, metrics, rundir, step};
use crate::augment::Normalize;
use crate::data::rng::{CounterRng, permutation};
use crate::data::{Clip, MovingShapes, open_video};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::objectives::{CONTEXT_FRAMES, InputSpec, Objective, StepInput};
use crate::optim::{Optimizer, WarmupCosine};

/// Keeps the window draws apart from every other keyed stream.
const WINDOW_TAG: u64 = 0x5749_4e44_4f57_5354; // "WINDOWST"

/// Pixels need no normalisation: frames are in [0, 1] and predicted so.
const IDENTITY: Normalize = Normalize {
    mean: [0.0; 3],
    std: [1.0; 3],
};

/// One epoch's record in `metrics.jsonl` (`kind` "video_epoch").
#[derive(Clone, Debug, serde::Serialize)]
pub struct VideoEpoch {
    pub epoch: u32,
    pub step: u64,
    /// The mean training loss over the epoch.
    pub loss: f32,
    pub clips_per_s: f64,
    #[serde(flatten)]
    pub evaluation: VideoEvaluation,
}

/// What a finished run reports.
#[derive(Debug)]
pub struct VideoSummary {
    /// The random-init model's evaluation (a fresh run only).
    pub baseline: Option<VideoEvaluation>,
    pub last: VideoEpoch,
}

/// A video training run in progress.
pub struct VideoTrainer {
    gpu: Gpu,
    config: TrainConfig,
    out: PathBuf,
    _dir: Option<rundir::RunDir>,
    train: MovingShapes,
    test: MovingShapes,
    objective: Box<dyn Objective>,
    optimizer: Optimizer,
    epoch: u32,
    step: u64,
    stop_after: Option<u32>,
    quiet: bool,
}

impl VideoTrainer {
    /// Prepares a fresh run in `out`, checking every input before anything
    /// is written (see [`super::Trainer::new`] for `overwrite`).
    pub fn new(gpu: &Gpu, config: TrainConfig, out: &Path, overwrite: bool) -> Result<Self> {
        Self::prepare(gpu, config, |_| rundir::RunDir::fresh(out, overwrite), out)
    }

    fn prepare(
        gpu: &Gpu,
        mut config: TrainConfig,
        claim: impl FnOnce(&Path) -> Result<rundir::RunDir>,
        out: &Path,
    ) -> Result<Self> {
        config.validate()?;
        let InputSpec::Clip { context, rollout } = config.objective.input() else {
            return Err(Error::invalid(
                "train",
                format!(
                    "{} is a video data set: train it with a video method (--method pixel), not {}",
                    config.data,
                    config.method()
                ),
            ));
        };
        let [train, test] = open_video(&config.data, config.seed)?;
        let c = *train.config();
        if c.frames < context + rollout {
            return Err(Error::invalid(
                "train",
                format!(
                    "clips of {} frames are shorter than the {context} context frames and the rollout of {rollout} a step needs: lower --rollout or lengthen the clips (moving-shapes:frames=N)",
                    c.frames
                ),
            ));
        }
        if config.batch_size > train.len() {
            return Err(Error::invalid(
                "train",
                format!(
                    "batch size {} is larger than the data set ({} clips)",
                    config.batch_size,
                    train.len()
                ),
            ));
        }
        let arch = config.encoder.arch(1);
        config.objective.fit_images(&arch, c.size, c.size)?;
        let objective = config.objective.build(gpu, &arch, config.seed)?;
        let optimizer = config.build_optimizer()?;
        let dir = claim(out)?;
        Ok(VideoTrainer {
            gpu: gpu.clone(),
            config,
            out: out.to_path_buf(),
            _dir: Some(dir),
            train,
            test,
            objective,
            optimizer,
            epoch: 0,
            step: 0,
            stop_after: None,
            quiet: false,
        })
    }

    /// Continues the run saved in `out`, as [`super::Trainer::resume`].
    pub fn resume(gpu: &Gpu, out: &Path, extension: Extension) -> Result<Self> {
        let dir = rundir::RunDir::existing(out)?;
        let saved = checkpoint::load(gpu, out)?;
        gpu.preset_tuning(&saved.kernels);
        let mut config = saved.config.clone();
        extension.apply(&mut config, saved.epoch, out)?;
        let mut t = Self::prepare(gpu, config, |_| Ok(dir), out)?;
        t.objective = super::restore(
            saved.objective,
            &mut t.optimizer,
            saved.step,
            saved.optimizer_state,
            out,
        )?;
        t.epoch = saved.epoch;
        t.step = saved.step;
        metrics::truncate(&out.join("metrics.jsonl"), saved.epoch)?;
        Ok(t)
    }

    /// Stops after `epochs` epochs of the run, as if interrupted.
    pub fn stop_after(mut self, epochs: Option<u32>) -> Self {
        self.stop_after = epochs;
        self
    }

    /// No progress bars or per-epoch lines (tests).
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    fn say(&self, line: &str) {
        if !self.quiet {
            println!("{line}");
        }
    }

    fn steps_per_epoch(&self) -> u64 {
        (self.train.len() / self.config.batch_size) as u64
    }

    fn schedule(&self) -> WarmupCosine {
        super::schedule_for(&self.config, self.steps_per_epoch())
    }

    /// The step's input: from each clip of `indices`, `frames` consecutive
    /// frames from a keyed random start.
    fn input(&self, indices: &[usize], frames: usize) -> Result<StepInput> {
        let c = self.train.config();
        let clips: Vec<Clip> = indices.iter().map(|&i| self.train.clip(i)).collect();
        let fl = self.train.frame_len();
        let mut windows: Vec<Clip> = Vec::with_capacity(clips.len());
        for (clip, &index) in clips.into_iter().zip(indices) {
            let mut rng =
                CounterRng::keyed(&[WINDOW_TAG, self.config.seed, self.step, index as u64]);
            let start = rng.below((c.frames - frames + 1) as u64) as usize;
            windows.push(Clip {
                pixels: clip.pixels[start * fl..(start + frames) * fl].to_vec(),
                truth: clip.truth[start..start + frames].to_vec(),
            });
        }
        let refs: Vec<&Clip> = windows.iter().collect();
        let tensors = (0..frames)
            .map(|t| video_eval::frame_batch(&self.gpu, &refs, t, c.size))
            .collect::<Result<Vec<_>>>()?;
        Ok(StepInput::frames(tensors))
    }

    /// Every evaluation of the current model, and the rollout picture's
    /// clips.
    pub fn evaluate(&mut self) -> Result<(VideoEvaluation, video_eval::Strip)> {
        video_eval::evaluate(
            &self.gpu,
            self.objective.as_mut(),
            &self.train,
            &self.test,
            self.config.eval_test_images,
        )
    }

    /// Runs the remaining epochs; evaluates the random-init model first on
    /// a fresh run.
    pub fn run(mut self) -> Result<VideoSummary> {
        let path = self.out.join("config.json");
        crate::files::write_atomic(&path, self.config.to_json()?.as_bytes())
            .map_err(|e| checkpoint::io(&path, e))?;
        self.say(&self.config.describe());
        let c = *self.train.config();
        self.say(&format!(
            "device {} | {} train / {} test clips of {} frames of {}x{}, {} object{}",
            self.gpu.describe(),
            self.train.len(),
            self.test.len(),
            c.frames,
            c.size,
            c.size,
            c.objects,
            if c.objects == 1 { "" } else { "s" }
        ));
        let mut log = metrics::MetricsLog::open(&self.out.join("metrics.jsonl"))?;
        let baseline = if self.epoch == 0 {
            let (b, _) = self.evaluate()?;
            self.say(&format!("random-init model: {}", b.line()));
            log.record(
                "video_baseline",
                &VideoEpoch {
                    epoch: 0,
                    step: 0,
                    loss: f32::NAN,
                    clips_per_s: 0.0,
                    evaluation: b.clone(),
                },
            )?;
            Some(b)
        } else {
            self.say(&format!(
                "resuming after epoch {} (step {})",
                self.epoch, self.step
            ));
            None
        };
        let InputSpec::Clip { context, rollout } = self.config.objective.input() else {
            return Err(Error::invalid("train", "not a video method"));
        };
        debug_assert_eq!(context, CONTEXT_FRAMES);
        let frames = context + rollout;
        let schedule = self.schedule();
        let per_epoch = self.steps_per_epoch();
        let total_steps = schedule.total_steps;
        let bs = self.config.batch_size;
        let mut last = None;
        let end = self
            .stop_after
            .map_or(self.config.epochs, |s| s.min(self.config.epochs));
        for epoch in self.epoch..end {
            let bar = super::epoch_bar(self.quiet, per_epoch, epoch, &self.config)?;
            let start = Instant::now();
            let mut rng =
                CounterRng::keyed(&[WINDOW_TAG, self.config.seed, epoch as u64, u64::MAX]);
            let order = permutation(self.train.len(), &mut rng);
            let mut pending: Option<step::PendingLosses> = None;
            let mut clips = 0usize;
            for batch in order.chunks_exact(bs) {
                let lr = schedule.at(self.step);
                let input = self.input(batch, frames)?;
                let mut ctx = step::StepContext {
                    gpu: &self.gpu,
                    objective: self.objective.as_mut(),
                    optimizer: &mut self.optimizer,
                    total_steps,
                    dist: None,
                };
                let next = step::train_step(&mut ctx, &input, self.step, lr)?;
                self.step += 1;
                clips += batch.len();
                if let Some(p) = pending.replace(next) {
                    let losses = p.wait()?;
                    bar.set_message(
                        metrics::progress_message(&losses, clips, start)
                            .replace("img/s", "clips/s"),
                    );
                    log.step(epoch, &losses)?;
                }
                bar.inc(1);
            }
            if let Some(p) = pending.take() {
                log.step(epoch, &p.wait()?)?;
            }
            let seconds = start.elapsed().as_secs_f64();
            bar.finish_and_clear();
            let (evaluation, strip) = self.evaluate()?;
            self.epoch = epoch + 1;
            let record = VideoEpoch {
                epoch: epoch + 1,
                step: self.step,
                loss: log.last_loss(),
                clips_per_s: clips as f64 / seconds.max(1e-9),
                evaluation,
            };
            log.record("video_epoch", &record)?;
            self.say(&format!(
                "epoch {} (step {}): loss {:.5} | {} | {:.1} clips/s",
                record.epoch,
                record.step,
                record.loss,
                record.evaluation.line(),
                record.clips_per_s
            ));
            checkpoint::save(checkpoint::State {
                dir: &self.out,
                config: &self.config,
                objective: self.objective.as_ref(),
                optimizer: &self.optimizer,
                epoch: self.epoch,
                step: self.step,
                normalize: IDENTITY,
                kernels: self.gpu.tuning(),
                image_size: (c.size, c.size),
            })?;
            crate::augment::save_png(
                &video_eval::strip_picture(&strip, 4),
                &self.out.join("rollout.png"),
            )?;
            last = Some(record);
        }
        let last = last.ok_or_else(|| Error::invalid("train", "no epoch left to run"))?;
        Ok(VideoSummary { baseline, last })
    }
}
