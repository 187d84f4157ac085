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
//!    is its largest from the violation's onset on. The score per
//!    violation is how often the impossible clip is the more surprising of
//!    the pair (ties count half): 50 % is chance.

use serde::Serialize;

use crate::autograd::Tape;
use crate::data::{Clip, MovingShapes, Violation};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::objectives::{CONTEXT_FRAMES, Objective};
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
        if !self.violation_accuracy.is_empty() {
            s += " | surprise accuracy";
            for (name, a) in &self.violation_accuracy {
                s += &format!(" {name} {:.0}%", 100.0 * a);
            }
        }
        s
    }
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
                e.blank_sse[k] += sse(truth, &vec![0.0; fl]);
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

/// The surprise of every frame from the third on: the squared error of
/// predicting it from the two true frames before it, `[clip][t - 2]`.
pub fn surprise(
    gpu: &Gpu,
    objective: &mut dyn Objective,
    clips: &[&Clip],
    side: usize,
) -> Result<Vec<Vec<f64>>> {
    let fl = side * side;
    let frames = clips.first().map_or(0, |c| c.pixels.len() / fl);
    let steps = frames.saturating_sub(CONTEXT_FRAMES);
    // Every (clip, t) pair as one item of a batch: the two frames before t.
    let mut out = vec![Vec::with_capacity(steps); clips.len()];
    let items: Vec<(usize, usize)> = (0..clips.len())
        .flat_map(|i| (CONTEXT_FRAMES..frames).map(move |t| (i, t)))
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
        let (a, b) = (frame_of(2)?, frame_of(1)?);
        let mut tape = Tape::no_grad(gpu);
        let predicted = objective
            .rollout(&mut tape, [&a, &b], 1)?
            .ok_or_else(|| Error::invalid("video", "this method does not predict frames"))?;
        let values = tape.value(predicted[0])?.to_vec()?;
        for (k, &(i, t)) in chunk.iter().enumerate() {
            let truth = &clips[i].pixels[t * fl..(t + 1) * fl];
            out[i].push(sse(truth, &values[k * fl..(k + 1) * fl]));
        }
    }
    Ok(out)
}

/// The peak surprise from frame `onset` on (frames before the third have
/// none).
fn peak(surprise: &[f64], onset: usize) -> f64 {
    surprise
        .iter()
        .skip(onset.saturating_sub(CONTEXT_FRAMES))
        .copied()
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
    let calm = surprise(gpu, objective, &refs, side)?;
    let mut out = Vec::new();
    for v in Violation::ALL {
        let violated: Vec<_> = (0..pairs).map(|i| test.violated(i, v)).collect();
        let refs: Vec<&Clip> = violated.iter().map(|x| &x.clip).collect();
        let shocked = surprise(gpu, objective, &refs, side)?;
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
