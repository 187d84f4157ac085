//! Representations of a frozen encoder, and the evaluations run on them.

use std::sync::Arc;

use crate::augment::{self, AugmentConfig, Normalize, Preset, U8Batch};
use crate::autograd::Tape;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::eval;
use crate::gpu::Gpu;
use crate::loss::monitors;
use crate::nn::Module;
use crate::tensor::Tensor;

/// The normalisation a dataset's images get before the encoder, recorded in
/// checkpoints so that `eval`, `embed` and PyTorch can reproduce it.
pub fn normalize_for(data: &str, channels: usize) -> Normalize {
    if data.starts_with("fashion-mnist") {
        Normalize::FASHION_MNIST
    } else if data.starts_with("mnist") {
        Normalize {
            mean: [0.1307; 3],
            std: [0.3081; 3],
        }
    } else if data.starts_with("cifar10") {
        Normalize {
            mean: [0.4914, 0.4822, 0.4465],
            std: [0.2470, 0.2435, 0.2616],
        }
    } else if channels == 1 {
        Normalize {
            mean: [0.5; 3],
            std: [0.25; 3],
        }
    } else {
        Normalize::IMAGENET
    }
}

/// Evenly spaced indices: all of `len` when `limit` is 0 or at least `len`.
pub fn subset(len: usize, limit: usize) -> Vec<usize> {
    if limit == 0 || limit >= len {
        return (0..len).collect();
    }
    (0..limit).map(|i| i * len / limit).collect()
}

/// The representation `[indices.len(), D]` of the chosen images, encoder in
/// evaluation mode, images resized to nothing and normalised only. Each
/// batch runs on a [`Tape::no_grad`]: no node keeps a tensor for a
/// backward, and every activation goes back to the pool with the tape.
pub fn representations(
    gpu: &Gpu,
    encoder: &mut dyn Module,
    data: &Arc<dyn Dataset>,
    indices: &[usize],
    normalize: Normalize,
    batch_size: usize,
) -> Result<Tensor> {
    let (h, w, c) = (data.height(), data.width(), data.channels());
    let mut config = AugmentConfig::preset(Preset::None);
    config.normalize = normalize;
    let mut rows: Vec<f32> = Vec::new();
    let mut dim = 0;
    let mut pending = Vec::new();
    for chunk in indices.chunks(batch_size.max(1)) {
        let mut images = vec![0u8; chunk.len() * h * w * c];
        for (k, &i) in chunk.iter().enumerate() {
            data.fill_image(i, &mut images[k * h * w * c..(k + 1) * h * w * c]);
        }
        let batch = U8Batch::upload(gpu, &images, [chunk.len(), h, w, c])?;
        let [x, _] = augment::views(&batch, &config, 0, 0)?;
        let mut tape = Tape::no_grad(gpu);
        let xv = tape.constant(&x)?;
        let r = encoder.forward(&mut tape, xv, false)?;
        let t = tape.value(r)?.clone();
        dim = t.shape()[1];
        pending.push(t.read_async());
        gpu.submit();
        // Keep at most two batches in flight.
        if pending.len() > 1 {
            rows.extend(pending.remove(0).wait()?);
        }
    }
    for p in pending {
        rows.extend(p.wait()?);
    }
    if indices.is_empty() {
        return Err(Error::invalid("representations", "no images to encode"));
    }
    if let Some(i) = rows.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid(
            "representations",
            format!(
                "the representation of image {} of {} holds {}: the encoder's weights are not finite",
                indices[i / dim.max(1)],
                data.name(),
                rows[i]
            ),
        ));
    }
    Tensor::from_slice(gpu, &rows, &[indices.len(), dim])
}

/// The evaluations that need labels, in percent.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Accuracy {
    /// kNN top-1, k = 20 and k = 200, temperature-weighted votes.
    pub knn_top1: f32,
    pub knn200_top1: f32,
    /// Linear probe on standardised frozen features.
    pub linear_train_top1: f32,
    pub linear_top1: f32,
}

/// What the per-epoch evaluation measures.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    /// `None` for data without labels (an image folder without class
    /// folders): only the collapse monitors are measured.
    #[serde(flatten)]
    pub accuracy: Option<Accuracy>,
    /// Collapse monitors of the test representations.
    pub std_mean: f64,
    pub std_min: f64,
    pub effective_rank: f64,
    /// Localisation probe R² (synthetic data only), one per target of
    /// `eval::LOCALISATION_TARGETS`: x, y, scale, and the rotation's sine and
    /// cosine (per symmetry order).
    pub localisation_r2: Option<Vec<f32>>,
    /// For the methods that reconstruct: the reconstruction's PSNR and its
    /// baselines' (`train::reconstruction`).
    #[serde(flatten, default)]
    pub reconstruction: Option<super::reconstruction::Quality>,
}

impl Evaluation {
    /// kNN and linear probe accuracy on one line, or why there is none.
    pub fn accuracy_line(&self) -> String {
        match &self.accuracy {
            Some(a) => format!(
                "kNN {:.2}% (k=200 {:.2}%), linear probe {:.2}% (train {:.2}%)",
                a.knn_top1, a.knn200_top1, a.linear_top1, a.linear_train_top1
            ),
            None => "no labels: kNN and linear probe skipped".to_string(),
        }
    }

    /// "localisation R² x 0.87 y 0.86 ..." on synthetic data, else `None`.
    pub fn localisation_line(&self) -> Option<String> {
        let r2 = self.localisation_r2.as_ref()?;
        let mut s = "localisation R²".to_string();
        for (name, v) in crate::eval::LOCALISATION_TARGETS.iter().zip(r2) {
            s += &format!(" {name} {v:.2}");
        }
        Some(s)
    }
}

/// Every label of the chosen images, or `None` if any is missing.
fn labels(data: &Arc<dyn Dataset>, indices: &[usize]) -> Option<Vec<u32>> {
    indices.iter().map(|&i| data.label(i)).collect()
}

/// Localisation targets of the synthetic shapes, one vector per target.
fn attributes(data: &Arc<dyn Dataset>, indices: &[usize]) -> Option<Vec<Vec<f32>>> {
    let attrs: Option<Vec<_>> = indices.iter().map(|&i| data.attributes(i)).collect();
    attrs.map(|a| eval::localisation_targets(&a))
}

/// Evaluates representations of `train` / `test` (already computed).
pub fn evaluate(
    train_data: &Arc<dyn Dataset>,
    train_idx: &[usize],
    train: &Tensor,
    test_data: &Arc<dyn Dataset>,
    test_idx: &[usize],
    test: &Tensor,
) -> Result<Evaluation> {
    let accuracy = match (
        train_data.num_classes(),
        labels(train_data, train_idx),
        labels(test_data, test_idx),
    ) {
        (Some(classes), Some(ytr), Some(yte)) => {
            // k never exceeds the memory bank (tiny runs).
            let ks = [20.min(ytr.len()), 200.min(ytr.len())];
            let knn = eval::knn(train, &ytr, test, &yte, classes, &ks, 0.07)?;
            let probe = eval::linear_probe(
                train,
                &ytr,
                test,
                &yte,
                classes,
                &eval::ProbeConfig::default(),
            )?;
            Some(Accuracy {
                knn_top1: knn[0],
                knn200_top1: knn[1],
                linear_train_top1: probe.train_top1,
                linear_top1: probe.test_top1,
            })
        }
        _ => None,
    };
    let collapse = monitors::normalized_std(test)?;
    let effective_rank = monitors::effective_rank(test)?;
    let localisation_r2 = match (
        attributes(train_data, train_idx),
        attributes(test_data, test_idx),
    ) {
        (Some(a), Some(b)) => Some(eval::regression_probe(train, &a, test, &b)?),
        _ => None,
    };
    Ok(Evaluation {
        accuracy,
        std_mean: collapse.mean_std,
        std_min: collapse.min_std,
        effective_rank,
        localisation_r2,
        reconstruction: None,
    })
}

/// The normalised pixels as the representation (`[N, H·W·C]`): the raw
/// baseline a learned representation has to beat.
pub fn raw_pixels(
    gpu: &Gpu,
    data: &Arc<dyn Dataset>,
    indices: &[usize],
    normalize: Normalize,
) -> Result<Tensor> {
    let (h, w, c) = (data.height(), data.width(), data.channels());
    let (mean, std) = if c == 1 {
        let luma = |v: [f32; 3]| 0.299 * v[0] + 0.587 * v[1] + 0.114 * v[2];
        ([luma(normalize.mean); 3], [luma(normalize.std); 3])
    } else {
        (normalize.mean, normalize.std)
    };
    let mut rows = Vec::with_capacity(indices.len() * h * w * c);
    let mut image = vec![0u8; h * w * c];
    for &i in indices {
        data.fill_image(i, &mut image);
        rows.extend(
            image
                .iter()
                .enumerate()
                .map(|(k, &v)| (v as f32 / 255.0 - mean[k % c]) / std[k % c]),
        );
    }
    Tensor::from_slice(gpu, &rows, &[indices.len(), h * w * c])
}
