//! `darkmatter train`, `eval` and `embed` through the binary: a short run on
//! tiny synthetic data, its files, resuming, and bad input.

#[path = "common/cli.rs"]
mod cli;

use std::path::Path;

use cli::*;

#[test]
fn a_short_run_writes_everything_and_learns() {
    let dir = scratch("run");
    let out = run(&[TINY, &["--out", dir.to_str().unwrap()]].concat());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("random-init encoder") && stdout.contains("trained encoder"),
        "{stdout}"
    );
    // The summary: the localisation probe beside each encoder's accuracy
    // (synthetic data), then the run directory and the pictures in it.
    let tail: Vec<&str> = stdout.lines().rev().take(6).collect();
    let r2 = tail
        .iter()
        .filter(|l| l.trim_start().starts_with("localisation R² x "))
        .count();
    assert_eq!(r2, 2, "{stdout}");
    assert!(
        stdout.lines().last()
            == Some("pictures: loss.png, accuracy.png, pca.png, augmentations.png"),
        "{stdout}"
    );
    for file in [
        "config.json",
        "metrics.jsonl",
        "checkpoint.safetensors",
        "loss.png",
        "accuracy.png",
        "pca.png",
        "augmentations.png",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let e = epochs(&dir);
    assert_eq!(e.len(), 2);
    for r in &e {
        for key in [
            "epoch",
            "step",
            "loss",
            "knn_top1",
            "knn200_top1",
            "linear_top1",
            "images_per_s",
        ] {
            assert!(r[key].is_number(), "{key} missing in {r}");
        }
    }
    assert_eq!(e[1]["step"], 6);
    let steps: Vec<f64> = records(&dir)
        .iter()
        .filter(|r| r["kind"] == "step")
        .map(|r| r["loss"].as_f64().unwrap())
        .collect();
    assert_eq!(steps.len(), 6);
    assert!(
        steps[4] + steps[5] < steps[0] + steps[1],
        "the loss did not decrease: {steps:?}"
    );

    // embed: NumPy f32 [N, 128] of the test split.
    let npy = dir.join("test.npy");
    run(&[
        "embed",
        "--checkpoint",
        dir.to_str().unwrap(),
        "--out",
        npy.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&npy).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(
        header.contains("'descr': '<f4'") && header.contains("'shape': (24, 128)"),
        "{header}"
    );
    assert_eq!((10 + header_len) % 64, 0);
    assert_eq!(bytes.len(), 10 + header_len + 24 * 128 * 4);

    // eval: the checkpoint and both baselines.
    let out = run(&[
        "eval",
        "--checkpoint",
        dir.to_str().unwrap(),
        "--baseline",
        "raw",
        "--baseline",
        "random",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in [
        "checkpoint",
        "baseline: raw pixels",
        "baseline: random init",
    ] {
        assert!(stdout.contains(line), "{line} missing: {stdout}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rewrites a checkpoint's metadata as files written before the objective
/// was a type: a flat configuration (`method`, `projector`,
/// `vicreg_coefficients`, `temperature`, `barlow_lambda`) and architectures
/// without `widths` or `output_norm`.
fn downgrade(dir: &Path) {
    use safetensors::SafeTensors;
    let path = dir.join("checkpoint.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = header.metadata().clone().unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&meta["darkmatter.config"]).unwrap();
    let objective = config.as_object_mut().unwrap().remove("objective").unwrap();
    assert_eq!(objective["method"], "vicreg");
    let c = config.as_object_mut().unwrap();
    c.insert("method".into(), "vicreg".into());
    c.insert("projector".into(), objective["projector"].clone());
    c.insert(
        "vicreg_coefficients".into(),
        objective["coefficients"].clone(),
    );
    c.insert("temperature".into(), 0.2.into());
    c.insert("barlow_lambda".into(), 0.0051.into());
    meta.insert("darkmatter.config".into(), config.to_string());
    let mut parts: serde_json::Value = serde_json::from_str(&meta["darkmatter.parts"]).unwrap();
    for p in parts.as_array_mut().unwrap() {
        let arch = p["arch"].as_object_mut().unwrap();
        arch.remove("widths");
        arch.remove("output_norm");
    }
    meta.insert("darkmatter.parts".into(), parts.to_string());
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> = file
        .names()
        .into_iter()
        .map(|n| (n.to_string(), file.tensor(n).unwrap()))
        .collect();
    std::fs::write(&path, safetensors::serialize(tensors, Some(meta)).unwrap()).unwrap();
}

/// The percentage after `kNN ` on the line starting with `prefix`.
fn knn_of(stdout: &str, prefix: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no '{prefix}' line in {stdout}"));
    let rest = &line[line.find("kNN ").expect("a kNN figure") + 4..];
    rest[..rest.find('%').unwrap()].trim().parse().unwrap()
}

/// README's headline claim: self-supervised training makes the encoder's
/// representation better than the same encoder at its random
/// initialisation. 96 VICReg steps on 2 048 synthetic 16 x 16 shapes (the
/// smallest run found to show it; seeds 0, 1 and 2 gain 7.6, 10.6 and 10.6
/// points on lavapipe).
#[test]
fn the_trained_encoder_beats_its_random_initialisation() {
    let dir = scratch("learns");
    let out = run(&[
        "train",
        "--synthetic-images",
        "2048",
        "--synthetic-size",
        "16",
        "--batch-size",
        "64",
        "--epochs",
        "3",
        "--lr",
        "8e-3",
        "--projector",
        "128-128",
        "--seed",
        "1",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let random = knn_of(&stdout, "random-init encoder:");
    let trained = knn_of(&stdout, "trained encoder:");
    assert!(
        trained >= random + 3.0,
        "kNN {trained}% after training, {random}% at random init"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn resuming_gives_the_metrics_of_an_uninterrupted_run() {
    let (a, b, c) = (scratch("whole"), scratch("halves"), scratch("old"));
    run(&[TINY, &["--out", a.to_str().unwrap()]].concat());
    run(&[TINY, &["--out", b.to_str().unwrap(), "--stop-after", "1"]].concat());
    assert_eq!(epochs(&b).len(), 1);
    // A copy of the interrupted run as an older version wrote it.
    std::fs::create_dir_all(&c).unwrap();
    for f in ["metrics.jsonl", "checkpoint.safetensors"] {
        std::fs::copy(b.join(f), c.join(f)).unwrap();
    }
    downgrade(&c);
    run(&["train", "--resume", b.to_str().unwrap()]);
    run(&["train", "--resume", c.to_str().unwrap()]);
    let strip = |rs: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        rs.into_iter()
            .map(|mut r| {
                r.as_object_mut().unwrap().remove("images_per_s");
                r
            })
            .collect()
    };
    assert_eq!(strip(records(&a)), strip(records(&b)));
    assert_eq!(strip(records(&a)), strip(records(&c)));
    for d in [a, b, c] {
        let _ = std::fs::remove_dir_all(&d);
    }
}

/// `config.json` as written before the objective was a type loads into the
/// same configuration the flags give today.
#[test]
fn an_old_config_file_still_loads() {
    use darkmatter::objectives::ObjectiveConfig;
    use darkmatter::train::{Method, TrainConfig};
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config-v1.json");
    let old: TrainConfig = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(
        old.objective,
        ObjectiveConfig::Vicreg {
            projector: vec![64, 64],
            coefficients: [25.0, 25.0, 1.0]
        }
    );
    let mut want = TrainConfig::defaults(Method::Vicreg, "synthetic");
    want.objective = old.objective.clone();
    want.epochs = 2;
    want.batch_size = 32;
    want.seed = 5;
    want.synthetic_train = 256;
    // Written before the scale was a setting: the shapes keep the
    // dataset's own scale, so a resumed run sees the images it began with.
    want.synthetic_scale = [0.3, 0.7];
    // The file keeps the rate it was written with (the default then).
    want.base_lr = 0.001;
    assert_eq!(old, want);
    // And today's format round-trips.
    let json = serde_json::to_string(&want).unwrap();
    assert_eq!(serde_json::from_str::<TrainConfig>(&json).unwrap(), want);
}

#[test]
fn bad_input_is_a_one_line_error_with_exit_code_2() {
    let dir = scratch("bad");
    let out = dir.to_str().unwrap();
    fails(
        &["train", "--method", "dino", "--out", out],
        "unknown method 'dino' (expected vicreg, simclr, barlow, byol, simsiam, mae, denoise, vicreg+mae, pixel or jepa)",
    );
    fails(
        &["train", "--temperature", "0.1", "--out", out],
        "--temperature does not apply to vicreg",
    );
    fails(
        &[
            "train",
            "--method",
            "simclr",
            "--ema-momentum",
            "0.9",
            "--out",
            out,
        ],
        "--ema-momentum does not apply to simclr",
    );
    fails(
        &[
            "train",
            "--method",
            "barlow",
            "--predictor",
            "64-512",
            "--out",
            out,
        ],
        "--predictor does not apply to barlow",
    );
    for m in [
        "--ema-momentum=1",
        "--ema-momentum=-0.1",
        "--ema-momentum=nan",
    ] {
        fails(
            &["train", "--method", "byol", m, "--out", out],
            "--ema-momentum must be in [0, 1)",
        );
    }
    fails(
        &[
            "train",
            "--method",
            "simsiam",
            "--predictor",
            "128-64",
            "--out",
            out,
        ],
        "--predictor must end at the projection's width 512",
    );
    fails(
        &["train", "--vicreg-coefficients", "25,25", "--out", out],
        "--vicreg-coefficients '25,25'",
    );
    for scale in ["0.9-0.5", "0-0.5", "0.5-1.5", "0.5", "big-1"] {
        fails(
            &["train", "--synthetic-scale", scale, "--out", out],
            &format!("--synthetic-scale '{scale}'"),
        );
    }
    fails(
        &["train", "--augment", "sepia", "--out", out],
        "unknown preset 'sepia'",
    );
    fails(
        &["train", "--data", "folder:/no/such/dir", "--out", out],
        "/no/such/dir",
    );
    fails(
        &["train", "--batch-size", "1", "--out", out],
        "batch size 1",
    );
    fails(
        &["train", "--adam-beta2", "1", "--out", out],
        "--adam-beta2 must be in (0, 1)",
    );
    fails(
        &[
            "train",
            "--synthetic-images",
            "40",
            "--batch-size",
            "64",
            "--out",
            out,
        ],
        "larger than the dataset",
    );
    assert!(!dir.exists(), "nothing may be written for bad input");
    fails(
        &[
            "train",
            "--synthetic-images",
            "40",
            "--batch-size",
            "16",
            "--out",
            "/proc/darkmatter",
        ],
        "/proc/darkmatter",
    );
    fails(
        &["eval", "--checkpoint", "/no/such/checkpoint.safetensors"],
        "/no/such/checkpoint",
    );

    // A checkpoint of another architecture: a 3-channel encoder on grey images.
    let run_dir = scratch("arch");
    run(&[
        TINY,
        &["--out", run_dir.to_str().unwrap(), "--stop-after", "1"],
    ]
    .concat());
    let grey = idx_dir("arch-grey", (16, 16), (16, 16), 20);
    let spec = format!("mnist:{}", grey.display());
    fails(
        &[
            "eval",
            "--checkpoint",
            run_dir.to_str().unwrap(),
            "--data",
            &spec,
        ],
        "does not take 1-channel images",
    );
    let _ = std::fs::remove_dir_all(&grey);
    // A VICReg run resumed as another method, before anything is touched.
    let before = std::fs::read(run_dir.join("metrics.jsonl")).unwrap();
    fails(
        &[
            "train",
            "--resume",
            run_dir.to_str().unwrap(),
            "--method",
            "byol",
        ],
        "was trained with vicreg; it cannot be resumed as byol",
    );
    assert_eq!(
        std::fs::read(run_dir.join("metrics.jsonl")).unwrap(),
        before
    );
    let _ = std::fs::remove_dir_all(&run_dir);
}
