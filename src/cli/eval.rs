//! `darkmatter eval`: how good a checkpoint's representation is, and the
//! baselines it should beat.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::data::Split;
use crate::train::{self, checkpoint, features, finetune, reconstruction, video_eval};
use crate::{Error, Gpu, Result};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Baseline {
    /// The normalised pixels themselves as the representation.
    Raw,
    /// A randomly initialised encoder of the checkpoint's (or the default) architecture.
    Random,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A checkpoint written by `darkmatter train` (a file or its run directory).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Data to evaluate on (default: the checkpoint's).
    #[arg(long)]
    pub data: Option<String>,
    /// Also report a baseline: raw pixels or a random-init encoder.
    #[arg(long, value_enum)]
    pub baseline: Vec<Baseline>,
    /// Images of each split to use (0 = all; the test split gets a fifth).
    #[arg(long, default_value_t = 0)]
    pub eval_images: usize,
    /// Seed of the random-init baseline.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also fine-tune the encoder with a linear head for this many epochs
    /// on a labelled fraction of the training split (--labels) and report
    /// the test accuracy; with --baseline random, the same protocol from a
    /// random initialisation (supervised from scratch).
    #[arg(long)]
    pub finetune: Option<u32>,
    /// The fraction of the training split's labels fine-tuning uses, in (0, 1].
    #[arg(long, default_value_t = 0.01)]
    pub labels: f32,
}

/// The fine-tuning protocol on `encoder`, printed as one line.
fn finetune_line(
    name: &str,
    gpu: &Gpu,
    encoder: &mut dyn crate::nn::Encoder,
    data: (
        &std::sync::Arc<dyn crate::data::Dataset>,
        &std::sync::Arc<dyn crate::data::Dataset>,
    ),
    augment: &crate::augment::AugmentConfig,
    args: &EvalArgs,
) -> Result<()> {
    let Some(epochs) = args.finetune else {
        return Ok(());
    };
    let cfg = finetune::FinetuneConfig {
        epochs,
        labels: args.labels,
        seed: args.seed,
        ..finetune::FinetuneConfig::default()
    };
    let r = finetune::finetune(gpu, encoder, data.0, data.1, augment, &cfg)?;
    println!(
        "{name:<22} fine-tuned {epochs} epochs on {} labelled images ({}%): test top-1 {:6.2}%",
        r.images,
        args.labels * 100.0,
        r.test_top1
    );
    Ok(())
}

/// A video checkpoint's rollout errors, probes and surprise accuracy on
/// the test clips of `data`, and with `--baseline random` those of a
/// random-init model of its configuration.
fn video(gpu: &Gpu, mut l: checkpoint::Loaded, data: &str, args: &EvalArgs) -> Result<()> {
    if !crate::data::is_video(data) {
        return Err(Error::invalid(
            "eval",
            format!(
                "the checkpoint is a video predictor ({}): evaluate it on video data (moving-shapes), not {data}",
                l.config.method()
            ),
        ));
    }
    if args.finetune.is_some() || args.baseline.iter().any(|b| matches!(b, Baseline::Raw)) {
        return Err(Error::invalid(
            "eval",
            "a video checkpoint takes --baseline random (its report includes the raw-pixel probe); --finetune is for image encoders",
        ));
    }
    let [train_clips, test_clips] = crate::data::open_video(data, l.config.seed)?;
    let c = test_clips.config();
    if l.image_size.is_some_and(|s| s != (c.size, c.size)) {
        return Err(Error::invalid(
            "eval",
            format!(
                "the checkpoint was trained on frames of {:?}, {data} has {}x{}",
                l.image_size.unwrap_or_default(),
                c.size,
                c.size
            ),
        ));
    }
    println!(
        "data {data}: {} train / {} test clips",
        train_clips.len(),
        test_clips.len()
    );
    let (e, _) = video_eval::evaluate(
        gpu,
        l.objective.as_mut(),
        &train_clips,
        &test_clips,
        args.eval_images,
    )?;
    println!("{:<22} {}", "checkpoint", e.line());
    if args.baseline.iter().any(|b| matches!(b, Baseline::Random)) {
        let arch = l.config.encoder.arch(1);
        let mut random = l.config.objective.build(gpu, &arch, args.seed)?;
        let (e, _) = video_eval::evaluate(
            gpu,
            random.as_mut(),
            &train_clips,
            &test_clips,
            args.eval_images,
        )?;
        println!("{:<22} {}", "baseline: random init", e.line());
    }
    Ok(())
}

fn report(name: &str, e: &features::Evaluation) {
    let accuracy = match &e.accuracy {
        Some(a) => format!(
            "kNN k=20 {:6.2}%  k=200 {:6.2}%  linear probe {:6.2}% (train {:6.2}%)",
            a.knn_top1, a.knn200_top1, a.linear_top1, a.linear_train_top1
        ),
        None => "no labels: kNN and linear probe skipped".to_string(),
    };
    println!(
        "{name:<22} {accuracy}  std {:.3} (min {:.3})  eff. rank {:.1}",
        e.std_mean, e.std_min, e.effective_rank
    );
    if let Some(q) = &e.reconstruction {
        let mut line = format!(
            "{:<22} reconstruction PSNR {:.2} dB (MSE {:.5})",
            "", q.recon_psnr, q.recon_mse
        );
        for (name, v) in [
            ("mean fill", q.fill_mean_psnr),
            ("inpainting", q.inpaint_psnr),
            ("corrupted input", q.corrupted_psnr),
        ] {
            if let Some(v) = v {
                line += &format!("  {name} {v:.2} dB");
            }
        }
        println!("{line}");
    }
    if let Some(r2) = &e.localisation_r2 {
        let parts: Vec<String> = crate::eval::LOCALISATION_TARGETS
            .iter()
            .zip(r2)
            .map(|(n, v)| format!("{n} {v:.3}"))
            .collect();
        println!("{:<22} localisation R² {}", "", parts.join("  "));
    }
}

pub fn run(args: &EvalArgs) -> Result<()> {
    if args.checkpoint.is_none() && args.baseline.is_empty() {
        return Err(Error::invalid(
            "eval",
            "give --checkpoint FILE, a --baseline, or both",
        ));
    }
    let gpu = Gpu::new()?;
    let loaded = match &args.checkpoint {
        Some(path) => Some(checkpoint::load(&gpu, path)?),
        None => None,
    };
    let data = args
        .data
        .clone()
        .or_else(|| loaded.as_ref().map(|l| l.config.data.clone()))
        .unwrap_or_else(|| "synthetic".into());
    let loaded = match loaded {
        Some(l) if l.config.method().is_video() => return video(&gpu, l, &data, args),
        other => other,
    };
    let mut config = loaded.as_ref().map_or_else(
        || train::TrainConfig::defaults(train::Method::Vicreg, &data),
        |l| l.config.clone(),
    );
    config.data = data.clone();
    let train_data = train::open_data(&data, Split::Train, &config)?;
    let test_data = train::open_data(&data, Split::Test, &config)?;
    crate::data::check_splits(train_data.as_ref(), test_data.as_ref())?;
    let tr = features::subset(train_data.len(), args.eval_images);
    let te = features::subset(test_data.len(), args.eval_images / 5);
    let normalize = loaded.as_ref().map_or_else(
        || features::normalize_for(&data, train_data.channels()),
        |l| l.normalize,
    );
    println!("data {data}: {} train / {} test images", tr.len(), te.len());
    // Fine-tuning augments every encoder the same way: the contrastive
    // methods' preset for this data.
    let mut augment = crate::augment::AugmentConfig::preset(
        train::TrainConfig::defaults(train::Method::Vicreg, &data)
            .augment
            .parse()?,
    );
    augment.normalize = normalize;

    if let Some(mut l) = loaded {
        if l.encoder_arch.in_channels() != Some(train_data.channels()) {
            return Err(Error::invalid(
                "eval",
                format!(
                    "the checkpoint's encoder {:?} does not take {}-channel images of {data}",
                    l.encoder_arch,
                    train_data.channels()
                ),
            ));
        }
        let encoder = l.objective.encoder();
        let a = features::representations(&gpu, encoder, &train_data, &tr, normalize, 256)?;
        let b = features::representations(&gpu, encoder, &test_data, &te, normalize, 256)?;
        let mut e = features::evaluate(&train_data, &tr, &a, &test_data, &te, &b)?;
        let same_images = l.image_size == Some((test_data.height(), test_data.width()));
        if same_images {
            let measured = reconstruction::measure(
                &gpu,
                l.objective.as_mut(),
                l.config.objective.input(),
                l.config.objective.norm_pix(),
                &test_data,
                normalize,
            )?;
            e.reconstruction = measured.map(|(q, _)| q);
        }
        report("checkpoint", &e);
        finetune_line(
            "checkpoint",
            &gpu,
            l.objective.encoder(),
            (&train_data, &test_data),
            &augment,
            args,
        )?;
    }
    for baseline in &args.baseline {
        let mut random_encoder = None;
        let e = match baseline {
            Baseline::Raw => {
                let a = features::raw_pixels(&gpu, &train_data, &tr, normalize)?;
                let b = features::raw_pixels(&gpu, &test_data, &te, normalize)?;
                features::evaluate(&train_data, &tr, &a, &test_data, &te, &b)?
            }
            Baseline::Random => {
                let arch = config.encoder.arch(train_data.channels());
                let mut encoder = arch.build_encoder(&gpu, args.seed)?;
                let a = features::representations(
                    &gpu,
                    encoder.as_mut(),
                    &train_data,
                    &tr,
                    normalize,
                    256,
                )?;
                let b = features::representations(
                    &gpu,
                    encoder.as_mut(),
                    &test_data,
                    &te,
                    normalize,
                    256,
                )?;
                random_encoder = Some(encoder);
                features::evaluate(&train_data, &tr, &a, &test_data, &te, &b)?
            }
        };
        let name = match baseline {
            Baseline::Raw => "baseline: raw pixels",
            Baseline::Random => "baseline: random init",
        };
        report(name, &e);
        if let Some(mut encoder) = random_encoder {
            let data = (&train_data, &test_data);
            finetune_line(name, &gpu, encoder.as_mut(), data, &augment, args)?;
        }
    }
    Ok(())
}
