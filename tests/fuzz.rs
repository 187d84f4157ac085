//! Property tests over damaged files: every reader of a file a user hands
//! darkmatter — IDX and CIFAR-10 data, PNG and JPEG folders, safetensors
//! checkpoints — returns a typed error or a correct result on any
//! mutation of a valid file (bit flips, overwritten bytes, header words
//! set to extremes, truncation, appended garbage, and for checkpoints
//! edits of the JSON header: huge shapes, offsets past the end, other
//! dtypes, broken metadata), never a panic or an abort.
//!
//! The case counts suit CI; `DARKMATTER_FUZZ_CASES=N` multiplies them
//! (proptest prints a failing case's seed and its minimal mutation).

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use darkmatter::augment::Normalize;
use darkmatter::data::{
    CifarBatch, FolderDataset, FolderOptions, read_cifar10_batch, read_idx_images, read_idx_labels,
};
use darkmatter::nn::{Arch, ConvNetWidths};
use darkmatter::train::{Method, TrainConfig, checkpoint};
use proptest::prelude::*;
use proptest::test_runner::Config;

fn cases(base: u32) -> Config {
    let factor = std::env::var("DARKMATTER_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1);
    Config {
        cases: base * factor.max(1),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Header words that make readers overflow, over-allocate or divide by
/// zero when they trust them.
const EXTREMES: [u32; 7] = [0, 1, 0x803, 1 << 31, u32::MAX - 1, u32::MAX, 0x7fff_ffff];

/// One way a file gets damaged; positions are taken modulo its length.
#[derive(Clone, Debug)]
enum Damage {
    Flip { at: usize, bit: u8 },
    Set { at: usize, byte: u8 },
    Word { at: usize, word: u32 },
    Truncate { keep_per_mille: u16 },
    Append(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Damage::Flip { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Damage::Set { at, byte }),
        // Mostly in the header, where sizes live.
        (0usize..64, prop::sample::select(EXTREMES.to_vec()))
            .prop_map(|(at, word)| Damage::Word { at, word }),
        (0u16..1000).prop_map(|keep_per_mille| Damage::Truncate { keep_per_mille }),
        prop::collection::vec(any::<u8>(), 1..64).prop_map(Damage::Append),
    ]
}

fn apply(mut bytes: Vec<u8>, damages: &[Damage]) -> Vec<u8> {
    for d in damages {
        let len = bytes.len().max(1);
        match d {
            Damage::Flip { at, bit } if !bytes.is_empty() => bytes[at % len] ^= 1 << bit,
            Damage::Set { at, byte } if !bytes.is_empty() => bytes[at % len] = *byte,
            Damage::Word { at, word } if bytes.len() >= 4 => {
                let at = (at % (bytes.len() - 3)) & !3;
                bytes[at..at + 4].copy_from_slice(&word.to_be_bytes());
            }
            Damage::Truncate { keep_per_mille } => {
                bytes.truncate(bytes.len() * *keep_per_mille as usize / 1000)
            }
            Damage::Append(extra) => bytes.extend(extra),
            _ => {}
        }
    }
    bytes
}

fn idx_images(count: u32, rows: u32, cols: u32, seed: u8) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3];
    for d in [count, rows, cols] {
        b.extend(d.to_be_bytes());
    }
    b.extend((0..count * rows * cols).map(|i| (i as u8).wrapping_mul(seed)));
    b
}

fn idx_labels(count: u32) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 1];
    b.extend(count.to_be_bytes());
    b.extend((0..count).map(|i| (i % 10) as u8));
    b
}

fn cifar_records(count: usize, seed: u8) -> Vec<u8> {
    (0..count)
        .flat_map(|i| {
            std::iter::once((i % 10) as u8).chain((0..3072).map(move |p| (p as u8) ^ seed))
        })
        .collect()
}

proptest! {
    #![proptest_config(cases(256))]

    /// The IDX and CIFAR-10 readers on damaged files.
    #[test]
    fn data_files(kind in 0u8..3, seed in any::<u8>(), n in 1u32..5, damages in prop::collection::vec(damage(), 1..4)) {
        let valid = match kind {
            0 => idx_images(n, 1 + n % 3, 2 + n % 4, seed),
            1 => idx_labels(n * 3),
            _ => cifar_records(n as usize % 3 + 1, seed),
        };
        let input = apply(valid, &damages);
        let path = Path::new("fuzz");
        if let Ok(images) = read_idx_images(input.as_slice(), path) {
            prop_assert_eq!(images.pixels.len(), images.count * images.rows * images.cols);
        }
        if let Ok(labels) = read_idx_labels(input.as_slice(), path) {
            prop_assert!(!labels.is_empty());
        }
        let mut batch = CifarBatch::default();
        if read_cifar10_batch(input.as_slice(), path, &mut batch).is_ok() {
            prop_assert_eq!(batch.images.len(), batch.len() * 3072);
            prop_assert!(batch.labels.iter().all(|&l| l < 10));
        }
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("darkmatter-fuzz-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A small image encoded as PNG (`jpeg` false) or JPEG.
fn encoded(seed: u8, jpeg: bool) -> Vec<u8> {
    let img = image::RgbImage::from_fn(9, 7, |x, y| {
        image::Rgb([
            ((x as u8) * 20) ^ seed,
            (y as u8) * 30,
            seed.wrapping_add(x as u8),
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    let format = if jpeg {
        image::ImageFormat::Jpeg
    } else {
        image::ImageFormat::Png
    };
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

proptest! {
    #![proptest_config(cases(64))]

    /// A class folder holding one damaged image among good ones: the folder
    /// opens with every image decoded, or fails naming a file.
    #[test]
    fn image_folders(seed in any::<u8>(), jpeg in any::<bool>(), damages in prop::collection::vec(damage(), 1..4)) {
        let dir = scratch(&format!("folder-{seed}-{jpeg}"));
        let class = dir.join("a");
        std::fs::create_dir_all(&class).unwrap();
        std::fs::write(class.join("good.png"), encoded(seed, false)).unwrap();
        let name = if jpeg { "bad.jpg" } else { "bad.png" };
        std::fs::write(class.join(name), apply(encoded(seed, jpeg), &damages)).unwrap();
        match FolderDataset::open(&dir, FolderOptions::default()) {
            Ok(ds) => {
                use darkmatter::data::Dataset;
                prop_assert_eq!(ds.len(), 2);
                prop_assert_eq!(ds.image(1).len(), 32 * 32 * 3);
            }
            Err(e) => prop_assert!(e.to_string().contains(name), "{e}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A valid training checkpoint of a small ConvNet and projector.
fn checkpoint_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let gpu = common::gpu();
        let mut config = TrainConfig::defaults(Method::Vicreg, "synthetic");
        if let darkmatter::objectives::ObjectiveConfig::Vicreg { projector, .. } =
            &mut config.objective
        {
            *projector = vec![8, 8];
        }
        let arch = Arch::ConvNet {
            in_channels: 3,
            widths: ConvNetWidths([4, 4, 8, 8]),
        };
        let objective = config.objective.build(gpu, &arch, 0).unwrap();
        let optimizer = config.build_optimizer().unwrap();
        let dir = scratch("checkpoint-base");
        let path = checkpoint::save(checkpoint::State {
            dir: &dir,
            config: &config,
            objective: objective.as_ref(),
            optimizer: &optimizer,
            epoch: 1,
            step: 3,
            normalize: Normalize::IMAGENET,
            kernels: vec![],
            image_size: (10, 10),
        })
        .unwrap();
        let bytes = std::fs::read(path).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        bytes
    })
}

/// An edit of the checkpoint's JSON header, re-serialised with its length.
#[derive(Clone, Debug)]
enum HeaderEdit {
    /// A tensor's first dimension set to a huge value.
    HugeShape(usize, u64),
    /// A tensor's end offset past the data.
    Offset(usize, u64),
    /// A tensor's dtype replaced.
    Dtype(usize, &'static str),
    /// A metadata value replaced by garbage or by a huge projector width.
    Metadata(usize, &'static str),
}

fn header_edit() -> impl Strategy<Value = HeaderEdit> {
    prop_oneof![
        (any::<usize>(), prop::sample::select(vec![1u64 << 32, 1 << 40, u64::MAX / 8])).prop_map(|(i, v)| HeaderEdit::HugeShape(i, v)),
        (any::<usize>(), prop::sample::select(vec![0u64, 7, 1 << 33])).prop_map(|(i, v)| HeaderEdit::Offset(i, v)),
        (any::<usize>(), prop::sample::select(vec!["F64", "I64", "U8", "BF16"])).prop_map(|(i, d)| HeaderEdit::Dtype(i, d)),
        (any::<usize>(), prop::sample::select(vec!["{", "null", "[]", "\"\"", "[{\"prefix\":\"encoder\",\"arch\":{\"kind\":\"projector\",\"dims\":[128,2000000000]}}]"]))
            .prop_map(|(i, v)| HeaderEdit::Metadata(i, v)),
    ]
}

fn edit_header(bytes: &[u8], edit: &HeaderEdit) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let names: Vec<String> = header
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect();
    match edit {
        HeaderEdit::HugeShape(i, v) => {
            let shape = header[&names[i % names.len()]]["shape"]
                .as_array_mut()
                .unwrap();
            match shape.first_mut() {
                Some(d) => *d = (*v).into(),
                None => shape.push((*v).into()),
            }
        }
        HeaderEdit::Offset(i, v) => {
            header[&names[i % names.len()]]["data_offsets"][1] = (*v).into()
        }
        HeaderEdit::Dtype(i, d) => header[&names[i % names.len()]]["dtype"] = (*d).into(),
        HeaderEdit::Metadata(i, v) => {
            let meta = header["__metadata__"].as_object_mut().unwrap();
            let keys: Vec<String> = meta.keys().cloned().collect();
            meta.insert(keys[i % keys.len()].clone(), (*v).into());
        }
    }
    let text = header.to_string();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text.as_bytes());
    out.extend(&bytes[8 + n..]);
    out
}

proptest! {
    #![proptest_config(cases(48))]

    /// A damaged checkpoint loads completely or is refused with a typed
    /// error; loading never allocates what a header merely claims.
    #[test]
    fn checkpoints(edit in prop::option::of(header_edit()), damages in prop::collection::vec(damage(), 0..3)) {
        let mut bytes = checkpoint_bytes().to_vec();
        if let Some(e) = &edit {
            bytes = edit_header(&bytes, e);
        }
        let bytes = apply(bytes, &damages);
        let dir = scratch("checkpoint");
        let path = dir.join(format!("{}.safetensors", rand_name(&bytes)));
        std::fs::write(&path, &bytes).unwrap();
        match checkpoint::load(common::gpu(), &path) {
            Ok(loaded) => prop_assert_eq!(loaded.step, 3),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        let _ = std::fs::remove_file(&path);
        // Gone once empty: the last case leaves nothing behind.
        let _ = std::fs::remove_dir(&dir);
    }
}

/// A file name from the contents, so that parallel cases do not collide.
fn rand_name(bytes: &[u8]) -> String {
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{h:016x}")
}
