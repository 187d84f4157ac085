//! `darkmatter eval`: how good a checkpoint's representation is, and the
//! baselines it should beat.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::data::Split;
use crate::train::{self, checkpoint, features};
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
        report(
            "checkpoint",
            &features::evaluate(&train_data, &tr, &a, &test_data, &te, &b)?,
        );
    }
    for baseline in &args.baseline {
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
                features::evaluate(&train_data, &tr, &a, &test_data, &te, &b)?
            }
        };
        let name = match baseline {
            Baseline::Raw => "baseline: raw pixels",
            Baseline::Random => "baseline: random init",
        };
        report(name, &e);
    }
    Ok(())
}
