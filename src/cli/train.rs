//! `darkmatter train`: the main job.

use std::path::PathBuf;

use clap::Args;

use crate::dist::Dist;
use crate::objectives::ObjectiveConfig;
use crate::train::rundir::RunDir;
use crate::train::video::{VideoSummary, VideoTrainer};
use crate::train::{EncoderKind, Extension, Method, TrainConfig, Trainer, checkpoint};
use crate::{Error, Gpu, GpuOptions, Result};

/// Every flag is optional: unset ones take the defaults of the method and
/// dataset, printed at the start of the run.
#[derive(Args, Debug, Default, Clone)]
pub struct TrainArgs {
    /// Self-supervised method: vicreg, simclr, barlow, byol, simsiam, mae,
    /// denoise or vicreg+mae on images; pixel or jepa on video.
    #[arg(long)]
    pub method: Option<String>,
    /// Data: synthetic (embedded, no download), fashion-mnist[:DIR],
    /// mnist:DIR, cifar10:DIR or folder:DIR; video: moving-shapes, with
    /// optional settings after a colon, e.g.
    /// moving-shapes:objects=2,frames=20,size=64,noise=0.05,train=4000,test=1000.
    #[arg(long)]
    pub data: Option<String>,
    /// Encoder: convnet (4 conv layers, 128-d) or resnet18 (CIFAR stem, 512-d).
    #[arg(long)]
    pub encoder: Option<String>,
    /// Projector widths after the representation, e.g. 512-512-512.
    #[arg(long)]
    pub projector: Option<String>,
    /// byol, simsiam: predictor widths after the projection, e.g. 512-128
    /// (the last must equal the projection's width); pixel, jepa: the video
    /// predictor's hidden channels, e.g. 128.
    #[arg(long)]
    pub predictor: Option<String>,
    /// vicreg: invariance, variance and covariance weights, e.g. 25,25,1;
    /// jepa: latent prediction, variance and covariance weights, e.g.
    /// 1,10,100 (the covariance on the mean squared off-diagonal entry).
    #[arg(long)]
    pub vicreg_coefficients: Option<String>,
    /// simclr: the temperature of the similarities.
    #[arg(long)]
    pub temperature: Option<f32>,
    /// barlow: the weight of the off-diagonal cross-correlation terms.
    #[arg(long)]
    pub barlow_lambda: Option<f32>,
    /// byol: the target's EMA momentum at the first step, in [0, 1); it
    /// rises to 1 on a cosine over the run. jepa: take the targets from an
    /// EMA copy of the encoder with this (constant) momentum.
    #[arg(long)]
    pub ema_momentum: Option<f32>,
    /// mae, vicreg+mae: the side of a square patch, in pixels (it must
    /// divide the images).
    #[arg(long)]
    pub patch: Option<usize>,
    /// mae, vicreg+mae: the fraction of patches masked, in (0, 1).
    #[arg(long)]
    pub mask_ratio: Option<f32>,
    /// mae, vicreg+mae: reconstruct each patch normalised by its mean and
    /// std (on) or the pixels themselves (off).
    #[arg(long, value_parser = ["on", "off"])]
    pub norm_pix: Option<String>,
    /// pixel, jepa: frames predicted in a row from each context pair in a
    /// training step (each from the prediction before).
    #[arg(long)]
    pub rollout: Option<usize>,
    /// mae, denoise, vicreg+mae, pixel, jepa: the channels of each upsampling stage of
    /// the decoder, e.g. 64-32 (default: half the representation, then
    /// half again; one stage per doubling).
    #[arg(long)]
    pub decoder: Option<String>,
    /// denoise: gaussian:STD (pixel units), mask:P (pixels set to black)
    /// or salt-pepper:P.
    #[arg(long)]
    pub corruption: Option<String>,
    /// vicreg+mae: the weight of the masked-reconstruction term.
    #[arg(long)]
    pub reconstruction_weight: Option<f32>,
    /// Passes over the training data.
    #[arg(long)]
    pub epochs: Option<u32>,
    /// Images per step (each seen in two views).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Optimiser: lars, adamw or sgd.
    #[arg(long)]
    pub optimizer: Option<String>,
    /// Base learning rate for a batch of 256 (scaled by batch size / 256).
    #[arg(long)]
    pub lr: Option<f32>,
    /// Weight decay (not applied to biases and norm parameters).
    #[arg(long)]
    pub weight_decay: Option<f32>,
    /// LARS trust coefficient (eta): the step of a layer is lr * eta times
    /// its weight norm over its update norm.
    #[arg(long)]
    pub trust_coefficient: Option<f32>,
    /// AdamW's beta2, the decay of its squared-gradient average (beta1 is 0.9).
    #[arg(long)]
    pub adam_beta2: Option<f32>,
    /// Linear warm-up length in epochs, then cosine decay.
    #[arg(long)]
    pub warmup_epochs: Option<f32>,
    /// Augmentation preset: vicreg, simclr, light, none or position-preserving.
    #[arg(long)]
    pub augment: Option<String>,
    /// Seed of initialisation, data order and augmentation.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output directory: config.json, metrics.jsonl, checkpoint, plots
    /// (default runs/latest). A directory holding another run is refused
    /// unless --overwrite.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Start afresh in an --out directory that holds another run, removing
    /// that run's files.
    #[arg(long)]
    pub overwrite: bool,
    /// Continue the run saved in this directory. Its configuration is kept:
    /// only --stop-after and --epochs (to extend it) apply, and --method, if
    /// given, must be the run's.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Stop after this many epochs of the run, as if interrupted; --resume
    /// continues it with the same schedule (to train in chunks on a slow device).
    #[arg(long)]
    pub stop_after: Option<u32>,
    /// Images of the train split used by the per-epoch evaluation, a fifth
    /// as many of the test split (0 = all).
    #[arg(long)]
    pub eval_images: Option<usize>,
    /// With --data synthetic: images in the train split (the test split
    /// gets a quarter as many).
    #[arg(long)]
    pub synthetic_images: Option<usize>,
    /// With --data synthetic: the images' side in pixels.
    #[arg(long)]
    pub synthetic_size: Option<usize>,
    /// With --data synthetic: the least and greatest diameter of a shape,
    /// as fractions of the image's side, e.g. 0.5-0.9 (the default).
    #[arg(long)]
    pub synthetic_scale: Option<String>,
    /// Under mpirun (several ranks): batch-norm statistics over the global
    /// batch (on, the default there) or over each rank's shard (off).
    #[arg(long, value_parser = ["on", "off"])]
    pub sync_bn: Option<String>,
}

fn parse_dims(flag: &str, s: &str) -> Result<Vec<usize>> {
    s.split('-')
        .map(|d| {
            d.trim().parse::<usize>().map_err(|_| {
                Error::invalid(
                    "train",
                    format!("{flag} '{s}': expected widths like 512-512-512"),
                )
            })
        })
        .collect()
}

/// `MIN-MAX`, two fractions of the image's side.
fn parse_scale(s: &str) -> Result<[f32; 2]> {
    let bad = || {
        Error::invalid(
            "train",
            format!("--synthetic-scale '{s}': expected a range like 0.5-0.9 within (0, 1]"),
        )
    };
    let (lo, hi) = s.split_once('-').ok_or_else(bad)?;
    let lo: f32 = lo.trim().parse().map_err(|_| bad())?;
    let hi: f32 = hi.trim().parse().map_err(|_| bad())?;
    if !(lo > 0.0 && lo <= hi && hi <= 1.0) {
        return Err(bad());
    }
    Ok([lo, hi])
}

fn parse_coefficients(s: &str) -> Result<[f32; 3]> {
    let values: Vec<f32> = s
        .split(',')
        .map(|v| v.trim().parse::<f32>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| {
            Error::invalid(
                "train",
                format!("--vicreg-coefficients '{s}': expected three numbers like 25,25,1"),
            )
        })?;
    values.try_into().map_err(|_| {
        Error::invalid(
            "train",
            format!("--vicreg-coefficients '{s}': expected three numbers like 25,25,1"),
        )
    })
}

/// Sets the method's own hyper-parameters from their flags; a flag of
/// another method is an error naming it.
fn objective_flags(args: &TrainArgs, objective: &mut ObjectiveConfig) -> Result<()> {
    let method = objective.method();
    let foreign = |flag: &str| {
        Err(Error::invalid(
            "train",
            format!("{flag} does not apply to {method}"),
        ))
    };
    if let Some(p) = &args.projector {
        let widths = parse_dims("--projector", p)?;
        match objective {
            ObjectiveConfig::Vicreg { projector, .. }
            | ObjectiveConfig::Simclr { projector, .. }
            | ObjectiveConfig::Barlow { projector, .. }
            | ObjectiveConfig::Byol { projector, .. }
            | ObjectiveConfig::Simsiam { projector, .. }
            | ObjectiveConfig::VicregMae { projector, .. } => *projector = widths,
            _ => return foreign("--projector"),
        }
    }
    if let Some(d) = &args.decoder {
        let widths = parse_dims("--decoder", d)?;
        match objective {
            ObjectiveConfig::Mae { decoder, .. }
            | ObjectiveConfig::Denoise { decoder, .. }
            | ObjectiveConfig::VicregMae { decoder, .. }
            | ObjectiveConfig::Pixel { decoder, .. }
            | ObjectiveConfig::Jepa { decoder, .. } => *decoder = widths,
            _ => return foreign("--decoder"),
        }
    }
    if let Some(v) = args.patch {
        match objective {
            ObjectiveConfig::Mae { patch, .. } | ObjectiveConfig::VicregMae { patch, .. } => {
                *patch = v
            }
            _ => return foreign("--patch"),
        }
    }
    if let Some(v) = args.mask_ratio {
        match objective {
            ObjectiveConfig::Mae { mask_ratio, .. }
            | ObjectiveConfig::VicregMae { mask_ratio, .. } => *mask_ratio = v,
            _ => return foreign("--mask-ratio"),
        }
    }
    if let Some(v) = &args.norm_pix {
        match objective {
            ObjectiveConfig::Mae { norm_pix, .. } | ObjectiveConfig::VicregMae { norm_pix, .. } => {
                *norm_pix = v == "on"
            }
            _ => return foreign("--norm-pix"),
        }
    }
    if let Some(v) = &args.corruption {
        let parsed = v.parse()?;
        match objective {
            ObjectiveConfig::Denoise { corruption, .. } => *corruption = parsed,
            _ => return foreign("--corruption"),
        }
    }
    if let Some(v) = args.reconstruction_weight {
        match objective {
            ObjectiveConfig::VicregMae {
                reconstruction_weight,
                ..
            } => *reconstruction_weight = v,
            _ => return foreign("--reconstruction-weight"),
        }
    }
    if let Some(p) = &args.predictor {
        let widths = parse_dims("--predictor", p)?;
        match objective {
            ObjectiveConfig::Byol { predictor, .. }
            | ObjectiveConfig::Simsiam { predictor, .. } => *predictor = widths,
            ObjectiveConfig::Pixel { hidden, .. } | ObjectiveConfig::Jepa { hidden, .. } => {
                match widths.as_slice() {
                    [w] => *hidden = *w,
                    _ => {
                        return Err(Error::invalid(
                            "train",
                            format!(
                                "--predictor for {method} is one width (its hidden channels), got {p}"
                            ),
                        ));
                    }
                }
            }
            _ => return foreign("--predictor"),
        }
    }
    if let Some(r) = args.rollout {
        match objective {
            ObjectiveConfig::Pixel { rollout, .. } | ObjectiveConfig::Jepa { rollout, .. } => {
                *rollout = r
            }
            _ => return foreign("--rollout"),
        }
    }
    if let Some(c) = &args.vicreg_coefficients {
        let parsed = parse_coefficients(c)?;
        match objective {
            ObjectiveConfig::Vicreg { coefficients, .. }
            | ObjectiveConfig::VicregMae { coefficients, .. }
            | ObjectiveConfig::Jepa { coefficients, .. } => *coefficients = parsed,
            _ => return foreign("--vicreg-coefficients"),
        }
    }
    if let Some(t) = args.temperature {
        match objective {
            ObjectiveConfig::Simclr { temperature, .. } => *temperature = t,
            _ => return foreign("--temperature"),
        }
    }
    if let Some(l) = args.barlow_lambda {
        match objective {
            ObjectiveConfig::Barlow { lambda, .. } => *lambda = l,
            _ => return foreign("--barlow-lambda"),
        }
    }
    if let Some(m) = args.ema_momentum {
        match objective {
            ObjectiveConfig::Byol { ema_momentum, .. } => *ema_momentum = m,
            ObjectiveConfig::Jepa { ema_momentum, .. } => *ema_momentum = Some(m),
            _ => return foreign("--ema-momentum"),
        }
    }
    Ok(())
}

/// The configuration the flags ask for.
pub fn config(args: &TrainArgs) -> Result<TrainConfig> {
    let method: Method = args.method.as_deref().unwrap_or("vicreg").parse()?;
    let data = args.data.clone().unwrap_or_else(|| "synthetic".to_string());
    let mut c = TrainConfig::defaults(method, &data);
    if let Some(e) = &args.encoder {
        c.encoder = e.parse::<EncoderKind>()?;
    }
    objective_flags(args, &mut c.objective)?;
    macro_rules! set {
        ($($field:ident <- $arg:ident),*) => { $(if let Some(v) = args.$arg.clone() { c.$field = v; })* };
    }
    set!(epochs <- epochs, batch_size <- batch_size, optimizer <- optimizer, base_lr <- lr,
         weight_decay <- weight_decay, trust_coefficient <- trust_coefficient,
         adam_beta2 <- adam_beta2, warmup_epochs <- warmup_epochs, augment <- augment, seed <- seed,
         synthetic_train <- synthetic_images, synthetic_size <- synthetic_size);
    if let Some(scale) = &args.synthetic_scale {
        c.synthetic_scale = parse_scale(scale)?;
    }
    if let Some(n) = args.eval_images {
        c.eval_train_images = n;
        c.eval_test_images = n.div_ceil(5).max(10.min(n));
    }
    c.validate()?;
    Ok(c)
}

/// The flags given that a resumed run cannot honour (its configuration is
/// kept), by name.
fn fixed_on_resume(args: &TrainArgs) -> Vec<&'static str> {
    let given: [(&'static str, bool); 30] = [
        ("--rollout", args.rollout.is_some()),
        ("--patch", args.patch.is_some()),
        ("--mask-ratio", args.mask_ratio.is_some()),
        ("--norm-pix", args.norm_pix.is_some()),
        ("--decoder", args.decoder.is_some()),
        ("--corruption", args.corruption.is_some()),
        (
            "--reconstruction-weight",
            args.reconstruction_weight.is_some(),
        ),
        ("--data", args.data.is_some()),
        ("--encoder", args.encoder.is_some()),
        ("--projector", args.projector.is_some()),
        ("--predictor", args.predictor.is_some()),
        ("--vicreg-coefficients", args.vicreg_coefficients.is_some()),
        ("--temperature", args.temperature.is_some()),
        ("--barlow-lambda", args.barlow_lambda.is_some()),
        ("--ema-momentum", args.ema_momentum.is_some()),
        ("--batch-size", args.batch_size.is_some()),
        ("--optimizer", args.optimizer.is_some()),
        ("--lr", args.lr.is_some()),
        ("--weight-decay", args.weight_decay.is_some()),
        ("--trust-coefficient", args.trust_coefficient.is_some()),
        ("--adam-beta2", args.adam_beta2.is_some()),
        ("--warmup-epochs", args.warmup_epochs.is_some()),
        ("--augment", args.augment.is_some()),
        ("--seed", args.seed.is_some()),
        ("--eval-images", args.eval_images.is_some()),
        ("--synthetic-images", args.synthetic_images.is_some()),
        ("--synthetic-size", args.synthetic_size.is_some()),
        ("--synthetic-scale", args.synthetic_scale.is_some()),
        ("--out", args.out.is_some()),
        ("--overwrite", args.overwrite),
    ];
    given
        .into_iter()
        .filter(|(_, g)| *g)
        .map(|(f, _)| f)
        .collect()
}

pub fn run(args: &TrainArgs) -> Result<()> {
    let group = crate::dist::world()?.filter(|g| g.size() > 1);
    let Some(group) = group else {
        if args.sync_bn.is_some() {
            return Err(Error::invalid(
                "train",
                "--sync-bn applies to runs of several MPI ranks (mpirun -np N darkmatter train ...)",
            ));
        }
        let gpu = Gpu::new()?;
        if video_run(args)? {
            return finish_video(prepare_video(args, &gpu)?.run()?, args);
        }
        return finish(prepare(args, &gpu, None)?.run()?, args);
    };
    let dist = Dist {
        sync_bn: args.sync_bn.as_deref() != Some("off"),
        group: group.clone(),
    };
    // Setting up can fail on one rank alone (no adapter there): every rank
    // learns of it, and rank 0 says which rank failed and why.
    let setup = (|| {
        if video_run(args)? {
            return Err(Error::invalid(
                "train",
                "video runs use one process: run darkmatter train without mpirun",
            ));
        }
        let gpu = Gpu::with_options(GpuOptions {
            index: Some(group.local_rank()),
            ..GpuOptions::default()
        })?;
        prepare(args, &gpu, Some(dist.clone()))
    })();
    let trainer = match crate::dist::agree(group.as_ref(), setup) {
        Ok(t) => t,
        Err(e) if group.rank() == 0 => return Err(e),
        Err(_) => return Err(Error::Quiet),
    };
    // From here a failure on any rank ends the whole job.
    let rank = (group.rank(), group.size());
    let default_hook = std::panic::take_hook();
    let on_panic = group.clone();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        eprintln!("rank {} of {} panicked: ending the job", rank.0, rank.1);
        on_panic.abort(101);
    }));
    match trainer.run() {
        Ok(summary) if group.rank() == 0 => finish(summary, args),
        Ok(_) => Ok(()),
        Err(e) => {
            eprintln!(
                "error: rank {} of {}: {}",
                rank.0,
                rank.1,
                e.to_string().replace('\n', " ")
            );
            group.abort(2)
        }
    }
}

/// Whether the flags ask for a video run: a video data set or method, or
/// the resumption of such a run.
fn video_run(args: &TrainArgs) -> Result<bool> {
    let video_method = Method::is_video;
    if let Some(dir) = &args.resume {
        // A directory without a readable checkpoint (or one another run
        // holds) is reported by the image path's checks, in their order.
        return Ok(checkpoint::read_config(dir).is_ok_and(|saved| {
            video_method(saved.method()) || crate::data::is_video(&saved.data)
        }));
    }
    let method = args
        .method
        .as_deref()
        .map(str::parse::<Method>)
        .transpose()?;
    Ok(method.is_some_and(video_method) || args.data.as_deref().is_some_and(crate::data::is_video))
}

/// Checks the flags before a device is opened or a file written: the
/// configuration of a fresh run, `None` when resuming (whose flags are
/// checked against the saved run).
fn checked(args: &TrainArgs, dist: Option<&Dist>) -> Result<Option<TrainConfig>> {
    Ok(match &args.resume {
        None => Some(config(args)?),
        Some(dir) => {
            if let Some(flag) = fixed_on_resume(args).first() {
                return Err(Error::invalid(
                    "train",
                    format!(
                        "{flag} does not apply with --resume: the run in {} keeps its configuration (only --epochs, to extend it, and --stop-after do)",
                        dir.display()
                    ),
                ));
            }
            let method = args
                .method
                .as_deref()
                .map(str::parse::<Method>)
                .transpose()?;
            // Rank 0 takes the directory's lock; the other ranks only read.
            if crate::dist::leads(dist) {
                RunDir::ensure_free(dir)?;
            }
            let saved = checkpoint::read_config(dir)?;
            if let Some(m) = method.filter(|&m| m != saved.method()) {
                return Err(Error::invalid(
                    "train",
                    format!(
                        "the run in {} was trained with {}; it cannot be resumed as {m}",
                        dir.display(),
                        saved.method()
                    ),
                ));
            }
            None
        }
    })
}

/// Opens the video run (fresh or resumed) the flags ask for on `gpu`.
fn prepare_video(args: &TrainArgs, gpu: &Gpu) -> Result<VideoTrainer> {
    let out = args.out.clone().unwrap_or_else(|| "runs/latest".into());
    let trainer = match (checked(args, None)?, &args.resume) {
        (Some(c), _) => VideoTrainer::new(gpu, c, &out, args.overwrite)?,
        (None, Some(dir)) => VideoTrainer::resume(
            gpu,
            dir,
            Extension {
                epochs: args.epochs,
            },
        )?,
        (None, None) => {
            return Err(Error::invalid(
                "train",
                "no configuration and no run to resume",
            ));
        }
    };
    Ok(trainer.stop_after(args.stop_after))
}

/// Checks the flags and opens the run (fresh or resumed) on `gpu`.
fn prepare(args: &TrainArgs, gpu: &Gpu, dist: Option<Dist>) -> Result<Trainer> {
    let out = args.out.clone().unwrap_or_else(|| "runs/latest".into());
    let config = checked(args, dist.as_ref())?;
    let trainer = match (&args.resume, config) {
        (Some(dir), _) => {
            let extension = Extension {
                epochs: args.epochs,
            };
            Trainer::resume_distributed(gpu, dir, extension, dist)?
        }
        (None, Some(c)) => Trainer::new_distributed(gpu, c, &out, args.overwrite, dist)?,
        (None, None) => unreachable!("a configuration exists unless resuming"),
    };
    Ok(trainer.stop_after(args.stop_after))
}

/// Prints what a finished video run measured.
fn finish_video(summary: VideoSummary, args: &TrainArgs) -> Result<()> {
    let out = args
        .resume
        .clone()
        .or_else(|| args.out.clone())
        .unwrap_or_else(|| "runs/latest".into());
    if let Some(b) = &summary.baseline {
        println!("\nrandom-init model: {}", b.line());
    }
    println!(
        "trained model:     {}  (after {} epochs, {} steps)",
        summary.last.evaluation.line(),
        summary.last.epoch,
        summary.last.step
    );
    print_results(&out);
    Ok(())
}

/// Prints what a finished run measured.
fn finish(summary: crate::train::Summary, args: &TrainArgs) -> Result<()> {
    let out = args
        .resume
        .clone()
        .or_else(|| args.out.clone())
        .unwrap_or_else(|| "runs/latest".into());
    let l = &summary.last.evaluation;
    if let Some(b) = &summary.baseline {
        println!("\nrandom-init encoder: {}", b.accuracy_line());
        if let Some(r2) = b.localisation_line() {
            println!("                     {r2}");
        }
    }
    println!(
        "trained encoder:     {}  (after {} epochs, {} steps)",
        l.accuracy_line(),
        summary.last.epoch,
        summary.last.step
    );
    if let Some(r2) = l.localisation_line() {
        println!("                     {r2}");
    }
    print_results(&out);
    Ok(())
}

/// Names the run directory and the pictures the run wrote there.
fn print_results(out: &std::path::Path) {
    println!("results in {}", out.display());
    let pictures: Vec<&str> = crate::train::rundir::FILES
        .iter()
        .copied()
        .filter(|f| f.ends_with(".png"))
        .filter(|f| out.join(f).is_file())
        .collect();
    if !pictures.is_empty() {
        println!("pictures: {}", pictures.join(", "));
    }
}
