//! The PNG plots a run keeps in its output directory, redrawn each epoch.

use std::path::Path;
use std::sync::Arc;

use super::metrics::MetricsLog;
use super::plots;
use crate::augment::AugmentConfig;
use crate::data::Dataset;
use crate::error::Result;
use crate::eval;
use crate::tensor::Tensor;

/// Loss terms over steps, accuracy over epochs, a PCA scatter of the test
/// representations by class, and the augmentation preview grid.
pub fn write_all(
    out: &Path,
    log: &MetricsLog,
    test: &Arc<dyn Dataset>,
    test_features: &Tensor,
    augment: &AugmentConfig,
    train: &Arc<dyn Dataset>,
) -> Result<()> {
    let mut series: Vec<(&str, Vec<(u64, f32)>)> = vec![("loss", Vec::new())];
    for s in &log.steps {
        series[0].1.push((s.step, s.loss));
        for (name, v) in &s.terms {
            match series.iter_mut().find(|(n, _)| n == name) {
                Some((_, points)) => points.push((s.step, *v)),
                None => series.push((name, vec![(s.step, *v)])),
            }
        }
    }
    plots::loss_curves(out.join("loss.png"), &series)?;

    // Without labels there is no accuracy to draw.
    let pick = |f: fn(&super::features::Accuracy) -> f32| -> Vec<(u32, f32)> {
        log.epochs
            .iter()
            .filter_map(|r| Some((r.epoch, f(r.evaluation.accuracy.as_ref()?))))
            .collect()
    };
    if log.epochs.iter().any(|r| r.evaluation.accuracy.is_some()) {
        plots::accuracy_curves(
            out.join("accuracy.png"),
            &[
                ("kNN k=20", pick(|a| a.knn_top1)),
                ("kNN k=200", pick(|a| a.knn200_top1)),
                ("linear probe", pick(|a| a.linear_top1)),
            ],
        )?;
    }

    let (n, d) = (test_features.shape()[0], test_features.shape()[1]);
    let points = eval::pca_2d(&test_features.to_vec()?, n, d)?;
    let indices = super::features::subset(test.len(), points.len());
    let labels: Vec<u32> = indices
        .iter()
        .map(|&i| test.label(i).unwrap_or(0))
        .collect();
    plots::scatter(out.join("pca.png"), &points, &labels, test.class_names())?;

    let grid =
        crate::augment::preview_grid(test_features.gpu(), train.as_ref(), augment, 8, 0, 0, 4)?;
    crate::augment::save_png(&grid, &out.join("augmentations.png"))?;
    Ok(())
}
