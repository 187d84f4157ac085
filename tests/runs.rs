//! Runs that never lose work: one owner per output directory, nothing
//! non-finite saved or loaded, every size checked before it is allocated,
//! and a resumed run that refuses what it cannot honour.

#[path = "common/cli.rs"]
mod cli;

use std::path::Path;
use std::time::{Duration, Instant};

use cli::*;

/// [`tiny`] with these flags, writing into `dir`.
fn tiny_in(dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut all = extra.to_vec();
    all.extend(["--out", dir.to_str().unwrap()]);
    tiny(&all)
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn a_directory_holding_a_run_is_refused_unless_overwritten() {
    let dir = scratch("owned");
    let first = tiny_in(&dir, &["--epochs", "1"]);
    let first = strs(&first);
    run(&first);
    let checkpoint = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
    let log = std::fs::read(dir.join("metrics.jsonl")).unwrap();
    // Twice the same command: refused, nothing touched.
    fails(
        &first,
        "already holds a run (vicreg on synthetic, 1 epochs)",
    );
    let other = tiny_in(&dir, &["--method", "simclr", "--epochs", "1"]);
    fails(&strs(&other), "--overwrite starts afresh there");
    assert_eq!(
        std::fs::read(dir.join("checkpoint.safetensors")).unwrap(),
        checkpoint
    );
    assert_eq!(std::fs::read(dir.join("metrics.jsonl")).unwrap(), log);
    // Pictures an earlier video or reconstruction run would have left.
    for f in ["rollout.png", "reconstructions.png"] {
        std::fs::write(dir.join(f), b"stale").unwrap();
    }
    // --overwrite: the log holds the new run alone, and the directory only
    // the new run's pictures, which the summary names.
    let out = run(&strs(&tiny_in(
        &dir,
        &["--method", "simclr", "--epochs", "1", "--overwrite"],
    )));
    for f in ["rollout.png", "reconstructions.png"] {
        assert!(!dir.join(f).exists(), "{f} left behind");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("pictures: loss.png, accuracy.png, pca.png, augmentations.png\n"),
        "{stdout}"
    );
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    assert!(config.contains("\"simclr\""), "{config}");
    assert_eq!(epochs(&dir).len(), 1);
    assert_eq!(records(&dir).len(), 4, "3 steps and 1 epoch record");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_second_concurrent_run_fails_at_once_naming_the_first() {
    let dir = scratch("busy");
    let mut first = bin()
        .args(tiny_in(&dir, &["--epochs", "20"]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first run holds the directory.
    let lock = dir.join(".darkmatter.lock");
    let start = Instant::now();
    while !std::fs::read_to_string(&lock).is_ok_and(|s| s.starts_with("pid")) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the first run never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = format!("pid {}", first.id());
    let resume = ["train", "--resume", dir.to_str().unwrap()];
    let second = bin()
        .args(tiny_in(&dir, &["--overwrite"]))
        .output()
        .unwrap();
    let third = bin().args(resume).output().unwrap();
    first.kill().unwrap();
    first.wait().unwrap();
    for o in [second, third] {
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("is in use by another darkmatter run") && stderr.contains(&pid),
            "{stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn resume_refuses_what_it_cannot_honour_and_extends_a_finished_run() {
    let dir = scratch("extend");
    run(&strs(&tiny_in(&dir, &["--epochs", "1"])));
    let d = dir.to_str().unwrap();
    for (flag, value) in [
        ("--batch-size", "16"),
        ("--lr", "0.1"),
        ("--data", "fashion-mnist"),
        ("--seed", "3"),
    ] {
        fails(
            &["train", "--resume", d, flag, value],
            &format!("{flag} does not apply with --resume"),
        );
    }
    fails(
        &["train", "--resume", d, "--out", "/tmp/x"],
        "--out does not apply with --resume",
    );
    fails(
        &["train", "--resume", d, "--epochs", "0"],
        "--epochs 0 is fewer than the 1 epochs",
    );
    // More epochs extend the run; its plots cover the whole run.
    run(&["train", "--resume", d, "--epochs", "2"]);
    let e = epochs(&dir);
    assert_eq!(
        e.iter()
            .map(|r| r["epoch"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(records(&dir).len(), 8);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every numeric flag is checked before anything is written, so every
/// configuration saved reads back.
#[test]
fn numeric_flags_are_validated_before_anything_is_written() {
    let dir = scratch("numbers");
    let o = ["--out", dir.to_str().unwrap()];
    for (arg, needle) in [
        (
            "--trust-coefficient=inf",
            "--trust-coefficient must be positive, got inf",
        ),
        (
            "--trust-coefficient=NaN",
            "--trust-coefficient must be positive, got NaN",
        ),
        (
            "--trust-coefficient=-1",
            "--trust-coefficient must be positive",
        ),
        ("--lr=inf", "--lr must be positive"),
        ("--weight-decay=-1", "--weight-decay must be >= 0"),
        ("--warmup-epochs=nan", "--warmup-epochs must be >= 0"),
        (
            "--eval-images=3",
            "--eval-images must be 0 (every image) or at least 10, got 3",
        ),
        (
            "--synthetic-images=1000000000000",
            "--synthetic-images must be between 1 and",
        ),
    ] {
        fails(&[&["train", arg], &o[..]].concat(), needle);
    }
    assert!(!dir.exists(), "nothing may be written for bad input");
}

/// A size the device cannot hold is a typed error before any host memory
/// is allocated for it (it was an abort: "memory allocation failed").
#[test]
fn huge_sizes_are_typed_errors() {
    let dir = scratch("huge");
    fails(
        &strs(&tiny_in(&dir, &["--projector", "64-2000000000"])),
        "a parameter of shape [2000000000, 64] needs",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Divergence stops the run with the first non-finite quantity named, and
/// leaves no checkpoint holding it.
#[test]
fn a_diverged_run_saves_nothing_non_finite() {
    let dir = scratch("diverged");
    fails(
        &strs(&tiny_in(
            &dir,
            &["--epochs", "1", "--optimizer", "sgd", "--lr", "1e30"],
        )),
        "training diverged",
    );
    assert!(!dir.join("checkpoint.safetensors").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A checkpoint holding a NaN is refused on load, by eval, embed and
/// resume alike, naming the tensor; one missing some optimiser state
/// cannot be resumed.
#[test]
fn a_non_finite_or_incomplete_checkpoint_is_refused() {
    let dir = scratch("nan");
    run(&strs(&tiny_in(&dir, &["--epochs", "1"])));
    let good = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
    edit_checkpoint(&dir, |(tensors, _)| {
        let t = tensors
            .iter_mut()
            .find(|t| t.0 == "encoder.conv2.weight")
            .unwrap();
        t.3[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    let d = dir.to_str().unwrap();
    let npy = dir.join("x.npy");
    for args in [
        vec!["eval", "--checkpoint", d],
        vec!["embed", "--checkpoint", d, "--out", npy.to_str().unwrap()],
        vec!["train", "--resume", d],
    ] {
        fails(
            &args,
            "tensor 'encoder.conv2.weight' holds a non-finite value (NaN at element 2)",
        );
    }
    assert!(!npy.exists());

    std::fs::write(dir.join("checkpoint.safetensors"), &good).unwrap();
    edit_checkpoint(&dir, |(tensors, _)| {
        tensors.retain(|t| !t.0.starts_with("optimizer.projector.layers.0.weight"));
    });
    fails(
        &["train", "--resume", d],
        "holds no optimiser state for projector.layers.0.weight",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A write that fails after its temporary file was written (here the
/// rename, onto a directory) removes that temporary file.
#[test]
fn a_failed_write_leaves_nothing_behind() {
    let dir = scratch("tmpfiles");
    run(&strs(&tiny_in(&dir, &["--epochs", "1"])));
    let target = dir.join("taken.npy");
    std::fs::create_dir(&target).unwrap();
    fails(
        &[
            "embed",
            "--checkpoint",
            dir.to_str().unwrap(),
            "--out",
            target.to_str().unwrap(),
        ],
        "taken.npy",
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Self-supervised training needs no labels: a folder of images without
/// class folders trains, skipping the label-based evaluations (and saying
/// so once) and keeping the collapse monitors.
#[test]
fn unlabelled_images_train() {
    let data = scratch("unlabelled-data");
    std::fs::create_dir_all(&data).unwrap();
    for i in 0..40u32 {
        let img = image::RgbImage::from_fn(12, 12, |x, y| {
            image::Rgb([(x * 20 + i) as u8, (y * 20) as u8, ((x + y + i) * 9) as u8])
        });
        img.save(data.join(format!("{i:03}.png"))).unwrap();
    }
    let dir = scratch("unlabelled");
    let spec = format!("folder:{}", data.display());
    let out = run(&[
        "train",
        "--data",
        &spec,
        "--batch-size",
        "16",
        "--epochs",
        "1",
        "--projector",
        "32-32",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("has no labels").count(), 1, "{stdout}");
    assert!(
        stdout.contains("no labels: kNN and linear probe skipped"),
        "{stdout}"
    );
    let e = epochs(&dir);
    assert_eq!(e.len(), 1);
    assert!(
        e[0]["std_mean"].is_number() && e[0]["effective_rank"].is_number(),
        "{}",
        e[0]
    );
    assert!(e[0].get("knn_top1").is_none(), "{}", e[0]);
    assert!(dir.join("checkpoint.safetensors").is_file() && dir.join("pca.png").is_file());
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&data);
}

/// Splits of different image sizes, and images no network should train
/// on, are refused before anything is written.
#[test]
fn inconsistent_or_absurd_images_are_refused() {
    let out = scratch("idx-out");
    let o = out.to_str().unwrap();
    let mixed = idx_dir("idx-mixed", (28, 28), (20, 20), 40);
    let spec = format!("mnist:{}", mixed.display());
    fails(
        &["train", "--data", &spec, "--out", o],
        "the train split's images are 28x28 with 1 channels but the test split's are 20x20",
    );
    let line = idx_dir("idx-line", (1, 5000), (1, 5000), 20);
    let spec = format!("mnist:{}", line.display());
    fails(
        &["train", "--data", &spec, "--out", o],
        "images of 1x5000 pixels; each side must be between 4 and 1024",
    );
    assert!(!out.exists());
    for d in [mixed, line] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// A backend that this platform does not have is named as such, with the
/// ones it does have.
#[cfg(target_os = "linux")]
#[test]
fn an_unavailable_backend_is_named() {
    let out = bin()
        .env("DARKMATTER_BACKEND", "metal")
        .arg("info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "the metal backend is not available on linux; the backends here are vulkan, gl"
        ),
        "{stderr}"
    );
}

/// The reconstruction methods' settings are checked before anything is
/// written, each error naming its cause.
#[test]
fn reconstruction_settings_are_validated() {
    let dir = scratch("recon-bad");
    let o = ["--out", dir.to_str().unwrap()];
    let cases: [(&[&str], &str); 8] = [
        (
            &["--method", "mae", "--mask-ratio=1"],
            "--mask-ratio must be in (0, 1), got 1",
        ),
        (
            &["--method", "mae", "--mask-ratio=0"],
            "--mask-ratio must be in (0, 1), got 0",
        ),
        (
            &["--method", "mae", "--patch", "5"],
            "--patch 5 does not divide the 16x16 images",
        ),
        (
            &["--method", "denoise", "--corruption", "blur:3"],
            "--corruption 'blur:3': unknown kind",
        ),
        (
            &["--method", "denoise", "--corruption", "mask:1.5"],
            "a probability in (0, 1)",
        ),
        (
            &["--method", "mae", "--decoder", "64-32-16"],
            "a decoder of 3 doubling stages takes the encoder's 4x4 map of 16x16 images to 32x32, not back to 16x16: --decoder needs 2 widths",
        ),
        (
            &["--method", "vicreg", "--mask-ratio", "0.5"],
            "--mask-ratio does not apply to vicreg",
        ),
        (
            &["--method", "mae", "--projector", "64-64"],
            "--projector does not apply to mae",
        ),
    ];
    for (args, needle) in cases {
        fails(&[&["train"], args, &o[..]].concat(), needle);
    }
    assert!(!dir.exists(), "nothing may be written for bad input");
}

/// `eval --finetune`: the checkpoint's encoder and the random-init one
/// fine-tuned under the same protocol, each a line; and the reconstruction
/// quality of a reconstruction method's checkpoint.
#[test]
fn eval_fine_tunes_and_measures_reconstruction() {
    let dir = scratch("finetune");
    let d = dir.to_str().unwrap();
    run(&[
        "train",
        "--method",
        "mae",
        "--synthetic-images",
        "96",
        "--synthetic-size",
        "16",
        "--batch-size",
        "32",
        "--epochs",
        "1",
        "--out",
        d,
    ]);
    let out = run(&[
        "eval",
        "--checkpoint",
        dir.to_str().unwrap(),
        "--baseline",
        "random",
        "--finetune",
        "1",
        "--labels",
        "0.5",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout
            .matches("fine-tuned 1 epochs on 48 labelled images (50%): test top-1")
            .count(),
        2,
        "{stdout}"
    );
    assert!(
        stdout.contains("reconstruction PSNR") && stdout.contains("inpainting"),
        "{stdout}"
    );
    assert!(dir.join("reconstructions.png").is_file());
    fails(
        &[
            "eval",
            "--checkpoint",
            dir.to_str().unwrap(),
            "--finetune",
            "1",
            "--labels",
            "0",
        ],
        "--labels must be in (0, 1], got 0",
    );
    let _ = std::fs::remove_dir_all(&dir);
}
