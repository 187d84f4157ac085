//! Data-parallel training's arithmetic, run by ranks that are threads of
//! this process (`LocalGroup`, the same `Collective` trait MPI implements):
//! sharded batches and their augmentations, gathered losses, synchronised
//! batch norm, and whole training runs against one process. The same runs
//! over `mpirun` are in `tests/mpi.rs` (cargo feature `mpi`).

#[path = "common/cli.rs"]
mod cli;
mod common;

use std::sync::Arc;
use std::thread;

use cli::{scratch, step_losses};
use common::*;
use darkmatter::augment::{AugmentConfig, Preset, U8Batch, views_at};
use darkmatter::cli::train::{TrainArgs, config};
use darkmatter::data::{Dataset, Loader, LoaderConfig, Split, SyntheticConfig, SyntheticDataset};
use darkmatter::dist::{Dist, Group, agree, local::LocalGroup};
use darkmatter::loss::{self, BarlowConfig, InfoNceConfig, LossVariant, VicregConfig};
use darkmatter::train::{Extension, Trainer};
use darkmatter::{BatchNormState, Error, Tape, Tensor};

/// Runs `f(rank, group)` on `size` threads, one per rank; the results in
/// rank order.
fn ranks<T: Send>(size: usize, f: impl Fn(usize, Group) -> T + Sync) -> Vec<T> {
    let groups = LocalGroup::new(size);
    thread::scope(|s| {
        let handles: Vec<_> = groups
            .into_iter()
            .enumerate()
            .map(|(r, g)| {
                let f = &f;
                s.spawn(move || f(r, Arc::new(g) as Group))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a rank panicked"))
            .collect()
    })
}

fn dist(group: Group) -> Option<Dist> {
    Some(Dist {
        group,
        sync_bn: true,
    })
}

fn synthetic(len: usize, size: usize) -> Arc<dyn Dataset> {
    Arc::new(
        SyntheticDataset::new(
            SyntheticConfig {
                size,
                train_len: len,
                test_len: 8,
                seed: 3,
                ..SyntheticConfig::default()
            },
            Split::Train,
        )
        .unwrap(),
    )
}

#[test]
fn shards_cut_the_global_batch_without_overlap() {
    let ds = synthetic(50, 8);
    let cfg = LoaderConfig {
        batch_size: 12,
        seed: 4,
        shuffle: true,
        drop_last: true,
    };
    let whole: Vec<_> = Loader::new(ds.clone(), cfg).unwrap().epoch(2).collect();
    let shards: Vec<Vec<_>> = (0..3)
        .map(|r| {
            let l = Loader::new(ds.clone(), cfg).unwrap().shard(r, 3).unwrap();
            l.epoch(2).collect()
        })
        .collect();
    assert_eq!(whole.len(), 4);
    for (step, batch) in whole.iter().enumerate() {
        let mut indices: Vec<usize> = Vec::new();
        let mut images: Vec<u8> = Vec::new();
        for (r, shard) in shards.iter().enumerate() {
            let s = &shard[step];
            assert_eq!((s.len(), s.first), (4, 4 * r));
            indices.extend(&s.indices);
            images.extend(&s.images);
        }
        assert_eq!(indices, batch.indices);
        assert_eq!(images, batch.images);
    }
    // A last partial batch (50 % 12 = 2 images) kept by the loader must
    // split evenly too: over 2 ranks it does, over 3 it cannot.
    let keep = LoaderConfig {
        drop_last: false,
        ..cfg
    };
    let l = Loader::new(ds.clone(), keep).unwrap().shard(1, 2).unwrap();
    let last = l.epoch(0).last().unwrap();
    assert_eq!((last.len(), last.first), (1, 1));
    assert!(Loader::new(ds.clone(), keep).unwrap().shard(0, 3).is_err());
    for (rank, ranks) in [(0, 5), (3, 3), (0, 0)] {
        assert!(
            Loader::new(ds.clone(), cfg)
                .unwrap()
                .shard(rank, ranks)
                .is_err(),
            "rank {rank} of {ranks}"
        );
    }
}

#[test]
fn a_shard_is_augmented_as_the_same_images_of_the_global_batch() {
    let gpu = gpu();
    let ds = synthetic(40, 16);
    let cfg = LoaderConfig::new(10);
    let aug = AugmentConfig::preset(Preset::Vicreg);
    let batch = Loader::new(ds.clone(), cfg)
        .unwrap()
        .epoch(0)
        .next()
        .unwrap();
    let whole = views_at(&U8Batch::from_batch(gpu, &batch).unwrap(), &aug, 9, 3, 0).unwrap();
    let whole = whole.map(|v| v.to_vec().unwrap());
    for r in 0..2 {
        let shard = Loader::new(ds.clone(), cfg)
            .unwrap()
            .shard(r, 2)
            .unwrap()
            .epoch(0)
            .next()
            .unwrap();
        let views = views_at(
            &U8Batch::from_batch(gpu, &shard).unwrap(),
            &aug,
            9,
            3,
            shard.first,
        )
        .unwrap();
        for (v, w) in views.iter().zip(&whole) {
            let got = v.to_vec().unwrap();
            let per = got.len();
            assert_eq!(got, w[r * per..(r + 1) * per], "rank {r}");
        }
    }
}

/// A joint-embedding loss of two `[n, d]` embeddings.
type Loss = fn(&mut Tape, darkmatter::Var, darkmatter::Var) -> darkmatter::Result<darkmatter::Var>;

fn vicreg(
    t: &mut Tape,
    a: darkmatter::Var,
    b: darkmatter::Var,
) -> darkmatter::Result<darkmatter::Var> {
    let cfg = VicregConfig::default();
    Ok(loss::vicreg(t, a, b, &cfg, LossVariant::Fused)?.loss)
}

fn infonce(
    t: &mut Tape,
    a: darkmatter::Var,
    b: darkmatter::Var,
) -> darkmatter::Result<darkmatter::Var> {
    let cfg = InfoNceConfig { temperature: 0.2 };
    loss::infonce(t, a, b, &cfg, LossVariant::Fused)
}

fn barlow(
    t: &mut Tape,
    a: darkmatter::Var,
    b: darkmatter::Var,
) -> darkmatter::Result<darkmatter::Var> {
    let cfg = BarlowConfig::default();
    loss::barlow_twins(t, a, b, &cfg, LossVariant::Fused)
}

/// The loss and the gradients of both embeddings.
fn loss_and_grads(tape: &mut Tape, f: Loss, za: &Tensor, zb: &Tensor) -> (f32, Vec<f32>, Vec<f32>) {
    let (a, b) = (tape.param(za).unwrap(), tape.param(zb).unwrap());
    let (ga, gb) = (tape.gather_rows(a).unwrap(), tape.gather_rows(b).unwrap());
    let l = f(tape, ga, gb).unwrap();
    let value = tape.value(l).unwrap().to_vec().unwrap()[0];
    let grads = tape.backward(l).unwrap();
    let g = |v| grads.get(v).unwrap().to_vec().unwrap();
    (value, g(a), g(b))
}

#[test]
fn gathered_losses_see_the_global_batch_and_return_each_rank_its_rows() {
    let (size, n, d) = (3, 5, 7);
    let mut rng = Rng::new(11);
    let za = rng.vec(size * n * d, -1.0, 1.0);
    let zb = rng.vec(size * n * d, -1.0, 1.0);
    for (name, f) in [
        ("vicreg", vicreg as Loss),
        ("infonce", infonce as Loss),
        ("barlow", barlow as Loss),
    ] {
        let (want, wa, wb) = loss_and_grads(
            &mut Tape::new(gpu()),
            f,
            &upload(&za, &[size * n, d]),
            &upload(&zb, &[size * n, d]),
        );
        let got = ranks(size, |r, g| {
            let rows = r * n * d..(r + 1) * n * d;
            loss_and_grads(
                &mut Tape::with_dist(gpu(), dist(g)),
                f,
                &upload(&za[rows.clone()], &[n, d]),
                &upload(&zb[rows], &[n, d]),
            )
        });
        for (r, (loss, ga, gb)) in got.iter().enumerate() {
            // Every rank computes the global loss exactly.
            assert_eq!(*loss, want, "{name}: rank {r}'s loss");
            let rows = r * n * d..(r + 1) * n * d;
            // Its rows' gradient, times the number of ranks (the average
            // over the ranks after the backward divides it again).
            for (got, all) in [(ga, &wa), (gb, &wb)] {
                let want: Vec<f64> = all[rows.clone()]
                    .iter()
                    .map(|&v| v as f64 * size as f64)
                    .collect();
                assert_close(got, &want, 1e-6, 1e-7, &format!("{name}: rank {r}"));
            }
        }
    }
}

/// Batch norm in training mode with `loss = sum(y * w)`: the output, the
/// gradients of the input, gamma and beta, and the running statistics.
fn batch_norm_run(
    tape: &mut Tape,
    x: &[f32],
    w: &[f32],
    shape: &[usize],
    gamma: &[f32],
) -> [Vec<f32>; 6] {
    let c = shape[1];
    let (rm, rv) = (upload(&vec![0.1; c], &[c]), upload(&vec![0.9; c], &[c]));
    let state = BatchNormState {
        running_mean: &rm,
        running_var: &rv,
        momentum: 0.1,
        eps: 1e-5,
    };
    let xv = tape.param(&upload(x, shape)).unwrap();
    let g = tape.param(&upload(gamma, &[c])).unwrap();
    let b = tape.param(&upload(&vec![0.3; c], &[c])).unwrap();
    let y = tape.batch_norm(xv, Some((g, b)), &state, true).unwrap();
    let wv = tape.constant(&upload(w, shape)).unwrap();
    let p = tape.mul(y, wv).unwrap();
    let l = tape.sum_all(p).unwrap();
    let out = tape.value(y).unwrap().to_vec().unwrap();
    let grads = tape.backward(l).unwrap();
    let gr = |v| grads.get(v).unwrap().to_vec().unwrap();
    [
        out,
        gr(xv),
        gr(g),
        gr(b),
        rm.to_vec().unwrap(),
        rv.to_vec().unwrap(),
    ]
}

#[test]
fn synchronised_batch_norm_normalises_over_the_global_batch() {
    // Shapes that fit no tile; a different channel scale per channel.
    let (size, n, c, h, w) = (2, 3, 5, 3, 7);
    let mut rng = Rng::new(5);
    let len = size * n * c * h * w;
    let x: Vec<f32> = rng
        .vec(len, -1.0, 1.0)
        .iter()
        .enumerate()
        .map(|(i, v)| v * (1.0 + ((i / (h * w)) % c) as f32) + 0.5)
        .collect();
    let wt = rng.vec(len, -1.0, 1.0);
    let gamma = rng.away_from_zero(c, 0.5, 1.5);
    let want = batch_norm_run(&mut Tape::new(gpu()), &x, &wt, &[size * n, c, h, w], &gamma);
    let got = ranks(size, |r, g| {
        let rows = r * n * c * h * w..(r + 1) * n * c * h * w;
        batch_norm_run(
            &mut Tape::with_dist(gpu(), dist(g)),
            &x[rows.clone()],
            &wt[rows],
            &[n, c, h, w],
            &gamma,
        )
    });
    let to64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let per = n * c * h * w;
    for (r, [y, dx, dg, db, rm, rv]) in got.iter().enumerate() {
        let rows = r * per..(r + 1) * per;
        assert_close(y, &to64(&want[0][rows.clone()]), 1e-5, 1e-5, "output");
        assert_close(dx, &to64(&want[1][rows]), 1e-4, 1e-5, "input gradient");
        // Running statistics of the global batch, alike on every rank.
        assert_close(rm, &to64(&want[4]), 1e-5, 1e-6, "running mean");
        assert_close(rv, &to64(&want[5]), 1e-5, 1e-6, "running var");
        assert_eq!((rm, rv), (&got[0][4], &got[0][5]), "rank {r}");
        let _ = (dg, db);
    }
    // gamma's and beta's gradients are each rank's own sums: they add up
    // to the global ones.
    for (k, what) in [(2, "gamma"), (3, "beta")] {
        let sum: Vec<f64> = (0..c)
            .map(|i| got.iter().map(|g| g[k][i] as f64).sum())
            .collect();
        let got32: Vec<f32> = sum.iter().map(|&v| v as f32).collect();
        assert_close(&got32, &to64(&want[k]), 1e-4, 1e-5, what);
    }
}

#[test]
fn a_failure_on_one_rank_is_every_ranks_error_naming_it() {
    let results = ranks(3, |r, g| {
        let local: darkmatter::Result<()> = if r == 1 {
            Err(Error::Invalid {
                op: "gpu",
                reason: "no adapter found".into(),
            })
        } else {
            Ok(())
        };
        agree(g.as_ref(), local)
    });
    for (r, res) in results.iter().enumerate() {
        let e = res.as_ref().unwrap_err().to_string();
        assert!(e.contains("no adapter found"), "rank {r}: {e}");
        if r != 1 {
            assert!(e.contains("rank 1 of 3"), "rank {r}: {e}");
        }
    }
    let fine = ranks(2, |_, g| agree(g.as_ref(), Ok(7)));
    assert!(fine.iter().all(|r| matches!(r, Ok(7))));
}

/// A short run of `method` on tiny synthetic images, by `size` ranks (1: a
/// process alone); its step losses.
fn train(method: &str, size: usize, name: &str) -> Vec<f64> {
    let cfg = tiny(method, 1);
    let dir = scratch(name);
    let run = |d: Option<Dist>| {
        Trainer::new_distributed(gpu(), cfg.clone(), &dir, false, d)
            .unwrap()
            .quiet()
            .run()
            .unwrap()
    };
    if size == 1 {
        run(None);
    } else {
        ranks(size, |_, g| run(dist(g)));
    }
    let losses = step_losses(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    losses
}

fn tiny(method: &str, epochs: u32) -> darkmatter::train::TrainConfig {
    let args = TrainArgs {
        method: Some(method.to_string()),
        data: Some("synthetic".into()),
        synthetic_images: Some(80),
        synthetic_size: Some(16),
        batch_size: Some(16),
        projector: Some("32-32".into()),
        // Plain SGD, whose steps follow the gradients' size (Adam's
        // first steps would hide a wrongly scaled gradient).
        optimizer: Some("sgd".into()),
        lr: Some(0.05),
        warmup_epochs: Some(0.0),
        eval_images: Some(16),
        seed: Some(3),
        ..TrainArgs::default()
    };
    let mut cfg = config(&args).unwrap();
    cfg.epochs = epochs;
    cfg
}

#[test]
fn two_ranks_follow_the_one_process_trajectory() {
    for method in ["vicreg", "simclr"] {
        let one = train(method, 1, &format!("{method}-1"));
        let two = train(method, 2, &format!("{method}-2"));
        assert_eq!(one.len(), 5);
        assert_eq!(two.len(), one.len());
        for (step, (a, b)) in one.iter().zip(&two).enumerate() {
            let rel = (a - b).abs() / a.abs().max(1e-12);
            assert!(rel < 1e-4, "{method} step {step}: {a} vs {b} ({rel:.2e})");
        }
    }
}

#[test]
fn a_batch_that_does_not_split_over_the_ranks_is_refused() {
    let args = TrainArgs {
        synthetic_images: Some(48),
        synthetic_size: Some(16),
        batch_size: Some(15),
        ..TrainArgs::default()
    };
    let cfg = config(&args).unwrap();
    let dir = scratch("indivisible");
    let errors = ranks(2, |_, g| {
        Trainer::new_distributed(gpu(), cfg.clone(), &dir, false, dist(g))
            .err()
            .map(|e| e.to_string())
    });
    for e in errors {
        let e = e.expect("a batch of 15 over 2 ranks was accepted");
        assert!(e.contains("15") && e.contains("2 ranks"), "{e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_run_resumes_on_another_number_of_ranks() {
    let cfg = tiny("vicreg", 2);
    let whole = scratch("resume-whole");
    Trainer::new(gpu(), cfg.clone(), &whole, false)
        .unwrap()
        .quiet()
        .run()
        .unwrap();
    // The first epoch alone, then the second on two ranks.
    let split = scratch("resume-split");
    Trainer::new(gpu(), cfg, &split, false)
        .unwrap()
        .quiet()
        .stop_after(Some(1))
        .run()
        .unwrap();
    ranks(2, |_, g| {
        Trainer::resume_distributed(gpu(), &split, Extension::default(), dist(g))
            .unwrap()
            .quiet()
            .run()
            .unwrap()
    });
    let (a, b) = (step_losses(&whole), step_losses(&split));
    assert_eq!(a.len(), 10);
    assert_eq!(b.len(), a.len());
    for (step, (x, y)) in a.iter().zip(&b).enumerate() {
        let rel = (x - y).abs() / x.abs();
        assert!(rel < 1e-4, "step {step}: {x} vs {y} ({rel:.2e})");
    }
    for d in [whole, split] {
        let _ = std::fs::remove_dir_all(d);
    }
}
