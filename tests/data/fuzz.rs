//! A seeded mutation loop standing in for a fuzzer: the IDX and CIFAR
//! parsers must return (Ok or a typed error) on every input, never panic.
//!
//! Inputs start from valid files and are broken the ways real files break:
//! random bytes, flipped bytes, truncation, header words set to extremes,
//! appended garbage — then fed raw, gzip-wrapped, or gzip-wrapped with the
//! compressed bytes themselves damaged. `DARKMATTER_FUZZ_ITERS` sets the
//! number of cases (default 3000); a failure names the case to replay.

use std::panic::catch_unwind;
use std::path::Path;

use darkmatter::data::{CifarBatch, read_cifar10_batch, read_idx_images, read_idx_labels};

use crate::cifar::cifar_records;
use crate::idx::{idx_images, idx_labels};
use crate::{TestRng, gzip};

const SEED: u64 = 0x00da_4c0d_e5ee_d5ed;

/// Header words that make parsers overflow, over-allocate or divide by zero
/// when they trust them.
const EXTREMES: [u32; 8] = [0, 1, 0xff, 0x801, 0x803, 1 << 31, u32::MAX - 1, u32::MAX];

fn iterations() -> usize {
    std::env::var("DARKMATTER_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

/// A valid file of one of the three kinds, small and random.
fn valid_input(rng: &mut TestRng) -> Vec<u8> {
    match rng.below(3) {
        0 => {
            let (count, rows, cols) = (1 + rng.below(4), 1 + rng.below(5), 1 + rng.below(5));
            let pixels = rng.bytes(count * rows * cols);
            idx_images(count as u32, rows as u32, cols as u32, &pixels)
        }
        1 => {
            let labels: Vec<u8> = (0..1 + rng.below(20))
                .map(|_| rng.below(12) as u8)
                .collect();
            idx_labels(&labels)
        }
        _ => {
            let labels: Vec<u8> = (0..1 + rng.below(2)).map(|_| rng.below(11) as u8).collect();
            cifar_records(&labels, rng)
        }
    }
}

/// One of the ways a file gets damaged.
fn damage(mut bytes: Vec<u8>, rng: &mut TestRng) -> Vec<u8> {
    match rng.below(6) {
        0 => {
            let n = rng.below(200);
            bytes = rng.bytes(n);
        }
        1 if !bytes.is_empty() => {
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(bytes.len());
                bytes[at] = rng.next_u64() as u8;
            }
        }
        2 => {
            let n = rng.below(bytes.len() + 1);
            bytes.truncate(n);
        }
        3 if bytes.len() >= 16 => {
            let at = 4 * rng.below(4);
            let word = if rng.below(4) == 0 {
                rng.next_u64() as u32
            } else {
                EXTREMES[rng.below(EXTREMES.len())]
            };
            bytes[at..at + 4].copy_from_slice(&word.to_be_bytes());
        }
        4 => {
            let n = 1 + rng.below(64);
            bytes.extend(rng.bytes(n));
        }
        _ => {}
    }
    bytes
}

#[test]
fn parsers_never_panic_on_damaged_input() {
    let iterations = iterations();
    let mut outcomes = [0usize; 2]; // [ok, err]
    for case in 0..iterations {
        let mut rng = TestRng::new(SEED ^ case as u64);
        let valid = valid_input(&mut rng);
        let mut input = damage(valid, &mut rng);
        match rng.below(4) {
            0 | 1 => {}
            2 => input = gzip(&input),
            _ => input = damage(gzip(&input), &mut rng),
        }
        let result = catch_unwind(|| parse_all(&input));
        match result {
            Ok(ok) => {
                outcomes[0] += ok;
                outcomes[1] += 3 - ok;
            }
            Err(_) => panic!(
                "a parser panicked on case {case} of seed {SEED:#x} ({} bytes, starting {:02x?})",
                input.len(),
                &input[..input.len().min(32)]
            ),
        }
    }
    // The loop must exercise both outcomes, or it tests nothing.
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}

/// Runs every parser on `input`; returns how many accepted it, after
/// checking that what they accepted is self-consistent.
fn parse_all(input: &[u8]) -> usize {
    let path = Path::new("fuzz");
    let mut ok = 0;
    if let Ok(images) = read_idx_images(input, path) {
        assert_eq!(
            images.pixels.len(),
            images.count * images.rows * images.cols
        );
        ok += 1;
    }
    if let Ok(labels) = read_idx_labels(input, path) {
        assert!(!labels.is_empty());
        ok += 1;
    }
    let mut batch = CifarBatch::default();
    if read_cifar10_batch(input, path, &mut batch).is_ok() {
        assert_eq!(batch.images.len(), batch.len() * 3072);
        assert!(batch.labels.iter().all(|&l| l < 10));
        ok += 1;
    }
    ok
}
