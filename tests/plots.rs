//! Training plots: each is a PNG that decodes, has the documented size and
//! shows something; a path that cannot be written is a typed error.

use std::path::PathBuf;

use darkmatter::Error;
use darkmatter::train::plots::{self, CURVE_SIZE, SCATTER_SIZE};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("darkmatter-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Decodes `path`, checks its size and that it holds more than one colour.
fn check_png(path: &PathBuf, size: (u32, u32)) {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{path:?}: {e}"))
        .to_rgb8();
    assert_eq!(img.dimensions(), size, "{path:?}");
    let first = img.get_pixel(0, 0);
    assert!(img.pixels().any(|p| p != first), "{path:?} is one colour");
}

#[test]
fn loss_curves_png() {
    let dir = temp_dir("loss");
    let path = dir.join("loss.png");
    let curve = |scale: f32| -> Vec<(u64, f32)> {
        (0..200)
            .map(|s| (s * 10, scale * (-(s as f32) / 50.0).exp() + 0.1))
            .collect()
    };
    plots::loss_curves(
        &path,
        &[
            ("total", curve(30.0)),
            ("invariance", curve(5.0)),
            ("variance", curve(20.0)),
            ("covariance", curve(3.0)),
        ],
    )
    .unwrap();
    check_png(&path, CURVE_SIZE);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn accuracy_curves_png() {
    let dir = temp_dir("accuracy");
    let path = dir.join("accuracy.png");
    let knn: Vec<(u32, f32)> = (1..=10).map(|e| (e, 30.0 + 5.0 * e as f32)).collect();
    let probe: Vec<(u32, f32)> = (1..=10)
        .step_by(3)
        .map(|e| (e, 35.0 + 5.0 * e as f32))
        .collect();
    plots::accuracy_curves(&path, &[("kNN k=20", knn), ("linear probe", probe)]).unwrap();
    check_png(&path, CURVE_SIZE);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn scatter_png() {
    let dir = temp_dir("scatter");
    let path = dir.join("pca.png");
    let points: Vec<[f32; 2]> = (0..300)
        .map(|i| {
            let a = i as f32 * 0.37;
            [(i % 3) as f32 * 4.0 + a.cos(), a.sin()]
        })
        .collect();
    let labels: Vec<u32> = (0..300).map(|i| i % 3).collect();
    let names: Vec<String> = ["disc", "square", "triangle"].map(String::from).to_vec();
    plots::scatter(&path, &points, &labels, Some(&names)).unwrap();
    check_png(&path, SCATTER_SIZE);
    // Without class names the legend numbers the classes.
    plots::scatter(&path, &points, &labels, None).unwrap();
    check_png(&path, SCATTER_SIZE);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn unwritable_path_is_a_typed_error() {
    let path = std::env::temp_dir()
        .join("darkmatter-no-such-dir")
        .join("deeper")
        .join("loss.png");
    let err = plots::loss_curves(&path, &[("total", vec![(0, 1.0), (1, 0.5)])]).unwrap_err();
    match &err {
        Error::Io { path: p, .. } => assert!(p.contains("deeper"), "{err}"),
        other => panic!("expected Error::Io, got {other}"),
    }
    assert!(err.to_string().contains("loss.png"), "{err}");
    let err = plots::scatter(&path, &[[0.0, 0.0]], &[], None).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
}
