//! What a video predictor is judged by, on the test clips:
//!
//! 1. **Rollout error per horizon**: from the first two frames of each
//!    clip, predict the next frames one after another (each from the
//!    predictions before it) and sum the squared error of each predicted
//!    frame over its pixels (values in [0, 1]), averaged over clips: the
//!    per-frame error OpenSTL's Moving MNIST tables report. Beside it the
//!    same error for copying the last context frame and for a blank frame:
//!    a predictor is only worth its error below both.
//! 2. **Violation of expectation**: every test clip next to an impossible
//!    twin ([`Violation`]). The surprise at frame `t` is the squared error
//!    of predicting it from the two true frames before; a clip's surprise
//!    is its largest over the violation's event: the onset frame and the
//!    next ([`EVENT_FRAMES`]). The score per
//!    violation is how often the impossible clip is the more surprising of
//!    the pair (ties count half): 50 % is chance. A method that predicts
//!    in latent space measures its surprise there
//!    ([`Objective::surprise`]).
//! 3. **Probes** from the frozen feature maps (average-pooled to 4x4
//!    positions, 2x2 for each frame of the velocity probe): a ridge regression of
//!    the object's position from one frame's map and of its velocity
//!    from two consecutive maps, fitted on train clips and scored on test
//!    clips as RMSE in pixels and R²; then the position probe applied to
//!    the predicted maps of a rollout, per horizon, beside copying the
//!    last position and extrapolating at constant velocity (both from the
//!    true positions), and beside the same position probe on raw pixels.
//! 4. **Collapse monitors** of the per-position features of the test
//!    maps: the std per channel (of L2-normalised rows) and the effective
//!    rank.

use std::ops::Range;

use serde::Serialize;

use crate::autograd::{Tape, Var};
use crate::data::{Clip, MovingShapes, Violation};
use crate::error::{Error, Result};
use crate::eval::Ridge;
use crate::gpu::Gpu;
use crate::kernels::pool::PoolWindow;
use crate::loss::monitors;
use crate::objectives::{CONTEXT_FRAMES, Objective, jepa_positions};
use crate::tensor::Tensor;

/// The longest rollout evaluated.
pub const MAX_HORIZON: usize = 8;

/// Clips per evaluation batch.
const BATCH: usize = 64;

/// The evaluation of a predictor at one point of training.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct VideoEvaluation {
    /// Test clips the rollout errors average over.
    pub clips: usize,
    /// Per horizon t+1, t+2, ...: the predictor's, copying the last
    /// context frame's, and a blank frame's squared error per frame.
    pub sse: Vec<f64>,
    pub copy_last_sse: Vec<f64>,
    pub blank_sse: Vec<f64>,
    /// Clip pairs per violation.
    pub violation_pairs: usize,
    /// Per violation, how often the impossible clip was the more
    /// surprising (0..1).
    pub violation_accuracy: Vec<(String, f64)>,
    /// The probes and the collapse monitors.
    pub probes: Option<Probes>,
}

/// What linear probes read from the frozen maps, and the collapse
/// monitors of those maps.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Probes {
    /// The position of the first object from one frame's map.
    pub position_rmse: f64,
    pub position_r2: f64,
    /// Its velocity from two consecutive maps.
    pub velocity_rmse: f64,
    pub velocity_r2: f64,
    /// The position probe on raw pixels, for comparison.
    pub raw_pixels_position_rmse: f64,
    /// Per horizon t+1, ...: the position probe on the predicted maps,
    /// copying the last true position, and constant-velocity
    /// extrapolation from the last two true positions.
    pub rollout_position_rmse: Vec<f64>,
    pub copy_last_position_rmse: Vec<f64>,
    pub constant_velocity_rmse: Vec<f64>,
    /// Collapse monitors of the per-position features.
    pub std_mean: f64,
    pub std_min: f64,
    pub effective_rank: f64,
}

impl VideoEvaluation {
    /// The figures on one line.
    pub fn line(&self) -> String {
        let at = |v: &[f64], k: usize| v.get(k).copied().unwrap_or(f64::NAN);
        let last = self.sse.len().saturating_sub(1);
        let mut s = format!(
            "SSE/frame t+1 {:.1} (copy-last {:.1}, blank {:.1}) | t+{} {:.1} (copy-last {:.1})",
            at(&self.sse, 0),
            at(&self.copy_last_sse, 0),
            at(&self.blank_sse, 0),
            last + 1,
            at(&self.sse, last),
            at(&self.copy_last_sse, last),
        );
        if let Some(p) = &self.probes {
            let at4 = |v: &[f64]| v.get(3).or(v.last()).copied().unwrap_or(f64::NAN);
            s += &format!(
                " | probe position RMSE {:.2} px (R² {:.3}, raw pixels {:.2}), velocity {:.2} px/frame (R² {:.3}) | rolled-out position t+{} {:.2} px (copy-last {:.2}, constant velocity {:.2}) | std {:.3} (min {:.3}), eff. rank {:.1}",
                p.position_rmse,
                p.position_r2,
                p.raw_pixels_position_rmse,
                p.velocity_rmse,
                p.velocity_r2,
                p.rollout_position_rmse.len().min(4),
                at4(&p.rollout_position_rmse),
                at4(&p.copy_last_position_rmse),
                at4(&p.constant_velocity_rmse),
                p.std_mean,
                p.std_min,
                p.effective_rank
            );
        }
        if !self.violation_accuracy.is_empty() {
            s += " | surprise accuracy";
            for (name, a) in &self.violation_accuracy {
                s += &format!(" {name} {:.0}%", 100.0 * a);
            }
        }
        s
    }
}

/// Clip pairs per violation in an evaluation.
pub const VIOLATION_PAIRS: usize = 200;

/// Rows of the rollout picture.
pub const STRIP_CLIPS: usize = 4;

/// Every evaluation of `objective` on the first `count` test clips (0:
/// all), the probes fitted on train clips; and the rollout picture's
/// clips.
pub fn evaluate(
    gpu: &Gpu,
    objective: &mut dyn Objective,
    train: &MovingShapes,
    test: &MovingShapes,
    count: usize,
) -> Result<(VideoEvaluation, Strip)> {
    let (mut e, strip) = rollout_errors(gpu, objective, test, count, STRIP_CLIPS)?;
    e.probes = Some(probes(gpu, objective, train, test, count)?);
    let pairs = VIOLATION_PAIRS.min(test.len());
    e.violation_pairs = pairs;
    e.violation_accuracy = violation_accuracy(gpu, objective, test, pairs)?;
    Ok((e, strip))
}

/// Frame `t` of each clip as one `[N, 1, H, W]` tensor in [0, 1].
pub fn frame_batch(gpu: &Gpu, clips: &[&Clip], t: usize, side: usize) -> Result<Tensor> {
    let fl = side * side;
    let mut data = Vec::with_capacity(clips.len() * fl);
    for c in clips {
        let frame = c
            .pixels
            .get(t * fl..(t + 1) * fl)
            .ok_or_else(|| Error::invalid("video", format!("frame {t} is beyond the clip")))?;
        data.extend(frame.iter().map(|&b| b as f32 / 255.0));
    }
    Tensor::from_slice(gpu, &data, &[clips.len(), 1, side, side])
}

/// Sum of squared differences between a frame of a clip (bytes) and a
/// predicted frame.
fn sse(truth: &[u8], predicted: &[f32]) -> f64 {
    truth
        .iter()
        .zip(predicted)
        .map(|(&b, &p)| {
            let d = b as f64 / 255.0 - p as f64;
            d * d
        })
        .sum()
}

/// [`sse`] against a blank frame: the frame's energy.
fn blank_sse(truth: &[u8]) -> f64 {
    truth.iter().map(|&b| (b as f64 / 255.0).powi(2)).sum()
}

/// The first clips' context, truth and rollout, for a picture.
pub struct Strip {
    pub side: usize,
    /// Per clip: the clip's frames (context and truth) and the predicted
    /// frames after the context.
    pub clips: Vec<(Vec<u8>, Vec<Vec<f32>>)>,
}

/// Rolls `objective` out over `count` test clips (`count` 0: all);
/// returns the per-horizon errors and the first `keep` clips' rollouts.
pub fn rollout_errors(
    gpu: &Gpu,
    objective: &mut dyn Objective,
    test: &MovingShapes,
    count: usize,
    keep: usize,
) -> Result<(VideoEvaluation, Strip)> {
    let c = test.config();
    let side = c.size;
    let fl = side * side;
    let horizon = MAX_HORIZON.min(c.frames - CONTEXT_FRAMES);
    let count = if count == 0 {
        test.len()
    } else {
        count.min(test.len())
    };
    let mut e = VideoEvaluation {
        clips: count,
        sse: vec![0.0; horizon],
        copy_last_sse: vec![0.0; horizon],
        blank_sse: vec![0.0; horizon],
        ..VideoEvaluation::default()
    };
    let mut strip = Strip {
        side,
        clips: Vec::new(),
    };
    for start in (0..count).step_by(BATCH) {
        let clips: Vec<Clip> = (start..(start + BATCH).min(count))
            .map(|i| test.clip(i))
            .collect();
        let refs: Vec<&Clip> = clips.iter().collect();
        let a = frame_batch(gpu, &refs, 0, side)?;
        let b = frame_batch(gpu, &refs, 1, side)?;
        let mut tape = Tape::no_grad(gpu);
        let predicted = objective
            .rollout(&mut tape, [&a, &b], horizon)?
            .ok_or_else(|| Error::invalid("video", "this method does not predict frames"))?;
        let mut values = Vec::with_capacity(horizon);
        for v in predicted {
            values.push(tape.value(v)?.to_vec()?);
        }
        for (i, clip) in clips.iter().enumerate() {
            let frame = |t: usize| &clip.pixels[t * fl..(t + 1) * fl];
            let last: Vec<f32> = frame(CONTEXT_FRAMES - 1)
                .iter()
                .map(|&b| b as f32 / 255.0)
                .collect();
            for (k, pred) in values.iter().enumerate() {
                let truth = frame(CONTEXT_FRAMES + k);
                e.sse[k] += sse(truth, &pred[i * fl..(i + 1) * fl]);
                e.copy_last_sse[k] += sse(truth, &last);
                e.blank_sse[k] += blank_sse(truth);
            }
            if strip.clips.len() < keep {
                let rolled = values
                    .iter()
                    .map(|p| p[i * fl..(i + 1) * fl].to_vec())
                    .collect();
                strip.clips.push((clip.pixels.clone(), rolled));
            }
        }
    }
    for v in [&mut e.sse, &mut e.copy_last_sse, &mut e.blank_sse] {
        v.iter_mut().for_each(|x| *x /= count as f64);
    }
    Ok((e, strip))
}

/// The surprise of the frames `spans[i]` of each clip (never before the
/// third; the whole clip where no span is given): the squared error of
/// predicting a frame from the two true frames before it,
/// `[clip][t - 2]`, NaN where not computed.
pub fn surprise(
    gpu: &Gpu,
    objective: &mut dyn Objective,
    clips: &[&Clip],
    side: usize,
    spans: &[Range<usize>],
) -> Result<Vec<Vec<f64>>> {
    let fl = side * side;
    let frames = clips.first().map_or(0, |c| c.pixels.len() / fl);
    let steps = frames.saturating_sub(CONTEXT_FRAMES);
    // Every (clip, t) pair as one item of a batch: the two frames before t.
    let mut out = vec![vec![f64::NAN; steps]; clips.len()];
    let items: Vec<(usize, usize)> = (0..clips.len())
        .flat_map(|i| {
            let span = spans.get(i).cloned().unwrap_or(0..frames);
            (span.start.max(CONTEXT_FRAMES)..span.end.min(frames)).map(move |t| (i, t))
        })
        .collect();
    for chunk in items.chunks(BATCH * 4) {
        let frame_of = |back: usize| -> Result<Tensor> {
            let mut data = Vec::with_capacity(chunk.len() * fl);
            for &(i, t) in chunk {
                let f = &clips[i].pixels[(t - back) * fl..(t - back + 1) * fl];
                data.extend(f.iter().map(|&b| b as f32 / 255.0));
            }
            Tensor::from_slice(gpu, &data, &[chunk.len(), 1, side, side])
        };
        let (a, b, next) = (frame_of(2)?, frame_of(1)?, frame_of(0)?);
        let mut tape = Tape::no_grad(gpu);
        if let Some(per_clip) = objective.surprise(&mut tape, [&a, &b], &next)? {
            let values = tape.value(per_clip)?.to_vec()?;
            for (&(i, t), v) in chunk.iter().zip(values) {
                out[i][t - CONTEXT_FRAMES] = v as f64;
            }
            continue;
        }
        let predicted = objective
            .rollout(&mut tape, [&a, &b], 1)?
            .ok_or_else(|| Error::invalid("video", "this method does not predict frames"))?;
        let values = tape.value(predicted[0])?.to_vec()?;
        for (k, &(i, t)) in chunk.iter().enumerate() {
            let truth = &clips[i].pixels[t * fl..(t + 1) * fl];
            out[i][t - CONTEXT_FRAMES] = sse(truth, &values[k * fl..(k + 1) * fl]);
        }
    }
    Ok(out)
}

/// Train clips the probes are fitted on, and the frames of each they use.
const PROBE_TRAIN_CLIPS: usize = 500;
const PROBE_FRAMES: [usize; 4] = [1, 3, 5, 7];

/// A map average-pooled to about `cells` x `cells` positions and
/// flattened.
fn probe_features(tape: &mut Tape, z: Var, cells: usize) -> Result<Var> {
    let s = tape.shape(z)?.to_vec();
    let pool = (s[2].min(s[3]) / cells).max(1);
    let pooled = if s[2] >= pool && s[3] >= pool && pool > 1 {
        tape.avg_pool2d(
            z,
            PoolWindow {
                kernel: pool,
                stride: pool,
                padding: 0,
            },
        )?
    } else {
        z
    };
    let p = tape.shape(pooled)?.to_vec();
    tape.reshape(pooled, &[p[0], p[1..].iter().product()])
}

/// The side of the pooled map the position probe reads (4x4 x C
/// features) and the velocity probe reads (2x2 x C for each of two
/// frames): few enough features for the train frames to determine,
/// whatever the frame size.
const POSITION_CELLS: usize = 4;
const VELOCITY_CELLS: usize = 2;

/// The probe features of frame `t` of each clip, and (with
/// `with_previous`) of the frame before, side by side.
fn features_of(
    gpu: &Gpu,
    objective: &mut dyn Objective,
    clips: &[&Clip],
    t: usize,
    side: usize,
    with_previous: bool,
) -> Result<Vec<f32>> {
    let mut rows = Vec::new();
    for chunk in clips.chunks(BATCH * 2) {
        let mut tape = Tape::no_grad(gpu);
        let now = frame_batch(gpu, chunk, t, side)?;
        let z = objective.latents(&mut tape, &now)?;
        let pool = if with_previous {
            VELOCITY_CELLS
        } else {
            POSITION_CELLS
        };
        let f = probe_features(&mut tape, z, pool)?;
        let cur = tape.value(f)?.to_vec()?;
        let d = cur.len() / chunk.len();
        if with_previous {
            let before = frame_batch(gpu, chunk, t - 1, side)?;
            let zp = objective.latents(&mut tape, &before)?;
            let fp = probe_features(&mut tape, zp, pool)?;
            let prev = tape.value(fp)?.to_vec()?;
            for i in 0..chunk.len() {
                rows.extend_from_slice(&prev[i * d..(i + 1) * d]);
                rows.extend_from_slice(&cur[i * d..(i + 1) * d]);
            }
        } else {
            rows.extend(cur);
        }
    }
    Ok(rows)
}

/// Root mean squared distance between predicted and true points.
fn rmse(pred: &[Vec<f64>], truth: &[[f64; 2]]) -> f64 {
    let n = truth.len().max(1) as f64;
    let sum: f64 = truth
        .iter()
        .enumerate()
        .map(|(i, t)| (pred[0][i] - t[0]).powi(2) + (pred[1][i] - t[1]).powi(2))
        .sum();
    (sum / n).sqrt()
}

/// R² of a two-column prediction, pooled over both columns.
fn r2(pred: &[Vec<f64>], truth: &[[f64; 2]]) -> f64 {
    let n = truth.len().max(1) as f64;
    let mean = [0, 1].map(|k| truth.iter().map(|t| t[k]).sum::<f64>() / n);
    let (mut res, mut tot) = (0.0, 0.0);
    for (i, t) in truth.iter().enumerate() {
        for k in 0..2 {
            res += (pred[k][i] - t[k]).powi(2);
            tot += (t[k] - mean[k]).powi(2);
        }
    }
    1.0 - res / tot.max(1e-12)
}

fn columns(points: &[[f64; 2]]) -> Vec<Vec<f32>> {
    (0..2)
        .map(|k| points.iter().map(|p| p[k] as f32).collect())
        .collect()
}

/// Every probe and monitor of [`Probes`]: fitted on the first train clips,
/// scored on the first `count` test clips (0: all).
pub fn probes(
    gpu: &Gpu,
    objective: &mut dyn Objective,
    train: &MovingShapes,
    test: &MovingShapes,
    count: usize,
) -> Result<Probes> {
    let c = test.config();
    let side = c.size;
    let horizon = MAX_HORIZON.min(c.frames - CONTEXT_FRAMES);
    let count = if count == 0 {
        test.len()
    } else {
        count.min(test.len())
    };
    let train_clips: Vec<Clip> = (0..PROBE_TRAIN_CLIPS.min(train.len()))
        .map(|i| train.clip(i))
        .collect();
    let test_clips: Vec<Clip> = (0..count).map(|i| test.clip(i)).collect();
    let (tr, te): (Vec<&Clip>, Vec<&Clip>) =
        (train_clips.iter().collect(), test_clips.iter().collect());
    let at = |clips: &[&Clip], t: usize| -> Vec<[f64; 2]> {
        clips
            .iter()
            .map(|c| [c.truth[t][0].x as f64, c.truth[t][0].y as f64])
            .collect()
    };
    let motion = |clips: &[&Clip], t: usize| -> Vec<[f64; 2]> {
        clips
            .iter()
            .map(|c| [c.truth[t][0].vx as f64, c.truth[t][0].vy as f64])
            .collect()
    };
    let upload = |rows: Vec<f32>, n: usize| -> Result<Tensor> {
        let d = rows.len() / n.max(1);
        Tensor::from_slice(gpu, &rows, &[n, d])
    };
    // Position and velocity, from frames of the train clips.
    let (mut pos_x, mut vel_x, mut pos_y, mut vel_y) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut raw_x = Vec::new();
    for &t in PROBE_FRAMES.iter().filter(|&&t| t >= 1 && t < c.frames) {
        pos_x.extend(features_of(gpu, objective, &tr, t, side, false)?);
        vel_x.extend(features_of(gpu, objective, &tr, t, side, true)?);
        pos_y.extend(at(&tr, t));
        vel_y.extend(motion(&tr, t));
        for clip in &tr {
            raw_x.extend(
                clip.pixels[t * side * side..(t + 1) * side * side]
                    .iter()
                    .map(|&b| b as f32 / 255.0),
            );
        }
    }
    let n = pos_y.len();
    let position = Ridge::fit(&upload(pos_x, n)?, &columns(&pos_y))?;
    let velocity = Ridge::fit(&upload(vel_x, n)?, &columns(&vel_y))?;
    let raw = Ridge::fit_centred(&upload(raw_x, n)?, &columns(&pos_y))?;

    // Scored on the last context frame of the test clips.
    let t = CONTEXT_FRAMES - 1;
    let test_pos = at(&te, t);
    let p = position.predict(&features_of(gpu, objective, &te, t, side, false)?);
    let v = velocity.predict(&features_of(gpu, objective, &te, t, side, true)?);
    let test_vel = motion(&te, t);
    let raw_rows: Vec<f32> = te
        .iter()
        .flat_map(|c| {
            c.pixels[t * side * side..(t + 1) * side * side]
                .iter()
                .map(|&b| b as f32 / 255.0)
        })
        .collect();
    let mut out = Probes {
        position_rmse: rmse(&p, &test_pos),
        position_r2: r2(&p, &test_pos),
        velocity_rmse: rmse(&v, &test_vel),
        velocity_r2: r2(&v, &test_vel),
        raw_pixels_position_rmse: rmse(&raw.predict(&raw_rows), &test_pos),
        ..Probes::default()
    };

    // The position probe on the predicted maps of each horizon.
    let mut sq = vec![0.0; horizon];
    let mut rows_for_monitors: Option<Tensor> = None;
    for chunk in te.chunks(BATCH) {
        let a = frame_batch(gpu, chunk, 0, side)?;
        let b = frame_batch(gpu, chunk, 1, side)?;
        let mut tape = Tape::no_grad(gpu);
        if rows_for_monitors.is_none() {
            let z = objective.latents(&mut tape, &b)?;
            let r = jepa_positions(&mut tape, z)?;
            rows_for_monitors = Some(tape.value(r)?.clone());
        }
        let Some(maps) = objective.latent_rollout(&mut tape, [&a, &b], horizon)? else {
            break;
        };
        for (k, z) in maps.into_iter().enumerate() {
            let f = probe_features(&mut tape, z, POSITION_CELLS)?;
            let pred = position.predict(&tape.value(f)?.to_vec()?);
            for (i, clip) in chunk.iter().enumerate() {
                let truth = clip.truth[CONTEXT_FRAMES + k][0];
                sq[k] +=
                    (pred[0][i] - truth.x as f64).powi(2) + (pred[1][i] - truth.y as f64).powi(2);
            }
        }
    }
    let n = te.len().max(1) as f64;
    out.rollout_position_rmse = sq.iter().map(|s| (s / n).sqrt()).collect();
    for k in 0..horizon {
        let (mut copy, mut constant) = (0.0, 0.0);
        for clip in &te {
            let (p0, p1) = (clip.truth[0][0], clip.truth[1][0]);
            let truth = clip.truth[CONTEXT_FRAMES + k][0];
            let h = (k + 1) as f32;
            let (cx, cy) = (p1.x + h * (p1.x - p0.x), p1.y + h * (p1.y - p0.y));
            copy += ((p1.x - truth.x).powi(2) + (p1.y - truth.y).powi(2)) as f64;
            constant += ((cx - truth.x).powi(2) + (cy - truth.y).powi(2)) as f64;
        }
        out.copy_last_position_rmse.push((copy / n).sqrt());
        out.constant_velocity_rmse.push((constant / n).sqrt());
    }
    if let Some(rows) = rows_for_monitors {
        let stats = monitors::normalized_std(&rows)?;
        out.std_mean = stats.mean_std;
        out.std_min = stats.min_std;
        out.effective_rank = monitors::effective_rank(&rows)?;
    }
    Ok(out)
}

/// How many frames from a violation's onset its surprise is read over:
/// the frame where it happens and the next, whose context holds it. Later
/// frames compare two different scenes rather than the event (after a
/// vanishing, an empty scene that is trivially predictable against an
/// object still moving and bouncing), so they are left out.
pub const EVENT_FRAMES: usize = 2;

/// The frames of a violation at `onset`.
fn event(onset: usize) -> Range<usize> {
    onset..onset + EVENT_FRAMES
}

/// The peak surprise over the frames of a violation at `onset` (frames
/// before the third have none; NaN, not computed, is skipped).
fn peak(surprise: &[f64], onset: usize) -> f64 {
    let span = event(onset);
    surprise
        .iter()
        .enumerate()
        .filter(|&(k, _)| span.contains(&(k + CONTEXT_FRAMES)))
        .map(|(_, &v)| v)
        .filter(|v| v.is_finite())
        .fold(f64::NEG_INFINITY, f64::max)
}

/// The violation-of-expectation accuracy of `objective` over the first
/// `pairs` test clips, per violation.
pub fn violation_accuracy(
    gpu: &Gpu,
    objective: &mut dyn Objective,
    test: &MovingShapes,
    pairs: usize,
) -> Result<Vec<(String, f64)>> {
    let side = test.config().size;
    let pairs = pairs.min(test.len());
    let possible: Vec<Clip> = (0..pairs).map(|i| test.clip(i)).collect();
    let refs: Vec<&Clip> = possible.iter().collect();
    // Only the frames of an event are compared: the possible clips over
    // those of every violation.
    let events: Vec<Range<usize>> = (0..pairs)
        .map(|i| {
            let onsets = Violation::ALL.iter().map(|&v| test.onset(i, v));
            let (lo, hi) = onsets.fold((usize::MAX, 0), |(lo, hi), o| (lo.min(o), hi.max(o)));
            lo..event(hi).end
        })
        .collect();
    let calm = surprise(gpu, objective, &refs, side, &events)?;
    let mut out = Vec::new();
    for v in Violation::ALL {
        let violated: Vec<_> = (0..pairs).map(|i| test.violated(i, v)).collect();
        let refs: Vec<&Clip> = violated.iter().map(|x| &x.clip).collect();
        let spans: Vec<Range<usize>> = violated.iter().map(|x| event(x.onset)).collect();
        let shocked = surprise(gpu, objective, &refs, side, &spans)?;
        let mut score = 0.0;
        for (i, x) in violated.iter().enumerate() {
            let (a, b) = (peak(&shocked[i], x.onset), peak(&calm[i], x.onset));
            score += if a > b {
                1.0
            } else if a == b {
                0.5
            } else {
                0.0
            };
        }
        out.push((v.name().to_string(), score / pairs.max(1) as f64));
    }
    Ok(out)
}

/// Rows of clips: the context and the true frames above, the predictions
/// below (under the frames they predict), `zoom` pixels per pixel.
pub fn strip_picture(s: &Strip, zoom: usize) -> image::RgbImage {
    let side = s.side;
    let fl = side * side;
    let frames = s.clips.first().map_or(0, |c| c.0.len() / fl);
    let cols = frames.max(1);
    let rows = 2 * s.clips.len();
    let cell = side + 1;
    let (gw, gh) = (cols * cell + 1, rows * cell + 1);
    image::RgbImage::from_fn((gw * zoom) as u32, (gh * zoom) as u32, |x, y| {
        let (x, y) = (x as usize / zoom, y as usize / zoom);
        let (row, col) = (y / cell, x / cell);
        let (py, px) = (y % cell, x % cell);
        if py == 0 || px == 0 || row >= rows || col >= cols {
            return image::Rgb([48, 48, 48]);
        }
        let (py, px) = (py - 1, px - 1);
        let (pixels, rolled) = &s.clips[row / 2];
        let v = if row % 2 == 0 {
            pixels[col * fl + py * side + px]
        } else if col >= CONTEXT_FRAMES && col - CONTEXT_FRAMES < rolled.len() {
            (rolled[col - CONTEXT_FRAMES][py * side + px].clamp(0.0, 1.0) * 255.0).round() as u8
        } else {
            return image::Rgb([24, 24, 40]);
        };
        image::Rgb([v, v, v])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_reads_only_the_event() {
        // Surprise of frames 2..10; the event at frame 5 covers 5 and 6.
        let s = [9.0, 9.0, 9.0, 1.0, 3.0, 50.0, f64::NAN, 7.0];
        assert_eq!(peak(&s, 5), 3.0);
        assert_eq!(peak(&s, 4), 9.0);
        assert_eq!(peak(&s, 7), 50.0);
        // NaN (not computed) is skipped; an event past the end has none.
        assert_eq!(peak(&s, 8), 7.0);
        assert_eq!(peak(&s, 12), f64::NEG_INFINITY);
    }
}
