//! `metrics.jsonl`: one JSON record per line — a `step` record per training
//! step and an `epoch` record with the evaluation at the end of each epoch.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::checkpoint::io;
use super::features::Evaluation;
use super::step::StepLosses;
use crate::error::Result;

/// The end-of-epoch record.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct EpochRecord {
    pub epoch: u32,
    pub step: u64,
    /// The mean training loss over the epoch.
    pub loss: f32,
    pub images_per_s: f64,
    #[serde(flatten)]
    pub evaluation: Evaluation,
}

impl EpochRecord {
    /// The line printed at the end of an epoch.
    pub fn line(&self) -> String {
        let e = &self.evaluation;
        let mut s = format!(
            "epoch {} (step {}): loss {:.4} | {} | std {:.3} (min {:.3}) | eff. rank {:.1} | {:.0} img/s",
            self.epoch,
            self.step,
            self.loss,
            e.accuracy_line().replace("), ", ") | "),
            e.std_mean,
            e.std_min,
            e.effective_rank,
            self.images_per_s
        );
        if let Some(q) = &e.reconstruction {
            s += &format!(" | reconstruction PSNR {:.2} dB", q.recon_psnr);
            for (name, v) in [
                ("mean fill", q.fill_mean_psnr),
                ("inpainting", q.inpaint_psnr),
                ("corrupted input", q.corrupted_psnr),
            ] {
                if let Some(v) = v {
                    s += &format!(" ({name} {v:.2})");
                }
            }
        }
        if let Some(r2) = e.localisation_line() {
            s += " | ";
            s += &r2;
        }
        s
    }
}

#[derive(Serialize)]
struct StepRecord<'a> {
    kind: &'static str,
    epoch: u32,
    step: u64,
    loss: f32,
    lr: f32,
    grad_norm: f32,
    #[serde(flatten)]
    terms: std::collections::BTreeMap<&'a str, f32>,
}

/// One step's losses as the plots read them.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedStep {
    /// 1-based, as in the file.
    pub step: u64,
    pub loss: f32,
    pub terms: Vec<(String, f32)>,
}

/// The open log, with the records of the whole run so far (for the plots):
/// those already in the file when it was opened (a resumed run's first
/// part) and those logged since.
pub struct MetricsLog {
    path: PathBuf,
    file: File,
    pub steps: Vec<LoggedStep>,
    pub epochs: Vec<EpochRecord>,
    epoch_losses: Vec<f32>,
}

impl MetricsLog {
    /// Appends to `path` (created if missing), reading the records it
    /// already holds.
    pub fn open(path: &Path) -> Result<MetricsLog> {
        let (mut steps, mut epochs) = (Vec::new(), Vec::new());
        if let Ok(text) = std::fs::read_to_string(path) {
            for line in text.lines() {
                let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                if value["kind"] == "epoch" {
                    if let Ok(r) = serde_json::from_value::<EpochRecord>(value) {
                        epochs.push(r);
                    }
                } else if value["kind"] == "step"
                    && let (Some(step), Some(loss)) =
                        (value["step"].as_u64(), value["loss"].as_f64())
                {
                    let fixed = ["kind", "epoch", "step", "loss", "lr", "grad_norm"];
                    let terms = value
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter(|(k, _)| !fixed.contains(&k.as_str()))
                        .filter_map(|(k, v)| Some((k.clone(), v.as_f64()? as f32)))
                        .collect();
                    steps.push(LoggedStep {
                        step,
                        loss: loss as f32,
                        terms,
                    });
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| io(path, e))?;
        Ok(MetricsLog {
            path: path.to_path_buf(),
            file,
            steps,
            epochs,
            epoch_losses: Vec::new(),
        })
    }

    fn write(&mut self, line: String) -> Result<()> {
        writeln!(self.file, "{line}").map_err(|e| io(&self.path, e))
    }

    pub fn step(&mut self, epoch: u32, losses: &StepLosses) -> Result<()> {
        let record = StepRecord {
            kind: "step",
            epoch: epoch + 1,
            step: losses.step + 1,
            loss: losses.loss,
            lr: losses.lr,
            grad_norm: losses.grad_norm,
            terms: losses.terms.iter().cloned().collect(),
        };
        let line = serde_json::to_string(&record).map_err(|e| io(&self.path, e))?;
        self.write(line)?;
        self.epoch_losses.push(losses.loss);
        self.steps.push(LoggedStep {
            step: losses.step + 1,
            loss: losses.loss,
            terms: losses
                .terms
                .iter()
                .map(|(n, v)| (n.to_string(), *v))
                .collect(),
        });
        Ok(())
    }

    /// The mean loss of the steps logged since the last epoch record.
    pub fn last_loss(&self) -> f32 {
        let n = self.epoch_losses.len().max(1) as f32;
        self.epoch_losses.iter().sum::<f32>() / n
    }

    /// Appends an end-of-epoch record of another shape than
    /// [`EpochRecord`] (a video run's), marked with `kind`.
    pub fn record(&mut self, kind: &str, record: &impl Serialize) -> Result<()> {
        let mut value = serde_json::to_value(record).map_err(|e| io(&self.path, e))?;
        value["kind"] = kind.into();
        self.write(value.to_string())?;
        self.file.flush().map_err(|e| io(&self.path, e))?;
        self.epoch_losses.clear();
        Ok(())
    }

    pub fn epoch(&mut self, record: &EpochRecord) -> Result<()> {
        let mut value = serde_json::to_value(record).map_err(|e| io(&self.path, e))?;
        value["kind"] = "epoch".into();
        self.write(value.to_string())?;
        self.file.flush().map_err(|e| io(&self.path, e))?;
        self.epoch_losses.clear();
        self.epochs.push(record.clone());
        Ok(())
    }
}

/// The message shown next to the progress bar.
pub fn progress_message(l: &StepLosses, images: usize, start: Instant) -> String {
    let mut s = format!("loss {:.4}", l.loss);
    for (name, v) in &l.terms {
        s += &format!(" {} {:.4}", &name[..3], v);
    }
    let rate = images as f64 / start.elapsed().as_secs_f64().max(1e-9);
    s + &format!(" | {rate:.0} img/s")
}

/// Keeps the records of the epochs up to `epoch` (inclusive): a resumed run
/// rewrites what came after its checkpoint.
pub fn truncate(path: &Path, epoch: u32) -> Result<()> {
    let Ok(file) = File::open(path) else {
        return Ok(());
    };
    let mut kept = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|e| io(path, e))?;
        let e = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v["epoch"].as_u64())
            .unwrap_or(u64::MAX);
        if e <= epoch as u64 {
            kept.push(line);
        }
    }
    let mut text = kept.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    crate::files::write_atomic(path, text.as_bytes()).map_err(|e| io(path, e))
}
