//! Choosing kernel variants by measuring them on the device in use.
//!
//! Which variant is fastest depends on the device, its driver and the
//! shape: on one CPU the implicit-GEMM convolution runs at 11-15 GFLOP/s
//! and on another at 1.5, where the texture variants keep their speed. So
//! the first time a (kernel family, shape) is met on a device, the kernels
//! time each eligible variant briefly and keep the fastest, for the rest of
//! the run and, in a cache file keyed by adapter and driver, for later runs
//! (which then pay nothing). `DARKMATTER_TUNE=0` turns measuring off (each
//! family's measured heuristic, `default_for`, decides); `darkmatter info`
//! lists the cached choices.
//!
//! Different variants sum in different orders, so a run must not change its
//! mind: the choices made are kept in memory for the process, saved into
//! training checkpoints and preset on `--resume`, and two processes tuning
//! the same key at once agree on whichever wrote the cache first.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use super::Gpu;
use crate::error::Result;

/// How variants are chosen.
#[derive(Debug)]
pub(crate) struct Tuner {
    /// Measure unknown keys (false: every family's heuristic decides).
    measure: bool,
    /// The cache file shared by the runs on this adapter and driver.
    file: Option<PathBuf>,
    /// key -> variant name, for this process.
    choices: Mutex<BTreeMap<String, String>>,
}

/// The directory of darkmatter's caches: `DARKMATTER_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/darkmatter`, else `$HOME/.cache/darkmatter`.
pub fn cache_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(d) = var("DARKMATTER_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = var("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("darkmatter"));
    }
    var("HOME").map(|h| PathBuf::from(h).join(".cache").join("darkmatter"))
}

/// The revision of the tuned kernel families. A cached choice is only as
/// good as the kernels it timed: when a variant's kernel or the way its host
/// code cuts the work changes, this is raised, and the choices timed against
/// the old kernels (in a file of the old revision) are no longer read.
/// 2: the `texture` convolution got its own weight gradient; 3: it cuts
/// at least 8 ranges; 4: its lanes take the column blocks of a range; 5:
/// packed dy keeps only the margin the input gradient reads; 6: the
/// `texture_subgroup` convolution; 7: its forward and input gradient
/// compute 32 channels per lane; 8: 64 where that pads no further, and
/// its weight gradient 32 output channels.
pub(crate) const KERNELS_REVISION: u32 = 8;

/// FNV-1a, so the file name does not depend on the standard library's
/// hasher (which may change between releases).
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn read_choices(path: &Path) -> BTreeMap<String, String> {
    let mut text = String::new();
    let ok = File::open(path).and_then(|mut f| f.read_to_string(&mut text));
    if ok.is_err() {
        return BTreeMap::new();
    }
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| serde_json::from_value(v["choices"].clone()).ok())
        .unwrap_or_default()
}

/// An exclusive lock on `path.lock`, held while the file is read and
/// rewritten; `None` where the directory cannot be written (the cache is
/// then not used).
fn lock(path: &Path) -> Option<File> {
    std::fs::create_dir_all(path.parent()?).ok()?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path.with_extension("lock"))
        .ok()?;
    file.lock().ok()?;
    Some(file)
}

impl Tuner {
    /// A tuner for the adapter described by `info`: measuring unless
    /// `measure` is false, caching in `dir` when given.
    pub(crate) fn new(measure: bool, dir: Option<PathBuf>, info: &wgpu::AdapterInfo) -> Tuner {
        let identity = format!(
            "{} | {:?} | {} | {} | {:x}/{:x} | kernels {KERNELS_REVISION}",
            info.name, info.backend, info.driver, info.driver_info, info.vendor, info.device
        );
        let file = dir.map(|d| d.join(format!("tuning-{:016x}.json", fnv(&identity))));
        Tuner {
            measure,
            file,
            choices: Mutex::new(BTreeMap::new()),
        }
    }

    fn remembered(&self, key: &str) -> Option<String> {
        let map = self.choices.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).cloned()
    }

    /// Keeps `value` for `key` unless another thread got there first;
    /// returns the value kept.
    fn remember(&self, key: &str, value: String) -> String {
        let mut map = self.choices.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(key.to_string()).or_insert(value).clone()
    }
}

impl Gpu {
    /// The variant of a kernel family to use for `key` (the family, the
    /// pass and the shape), one of `candidates`: the one this run already
    /// chose, else the cached choice for this adapter and driver, else the
    /// fastest by `time` (seconds of one run of a candidate, or an error
    /// for a candidate that cannot run this shape; its second argument is
    /// the time to beat, so a hopeless candidate can stop early). The
    /// heuristic's `fallback` is measured first, and used when measuring is
    /// off, when `work` (multiply-adds) is too small for the choice to
    /// matter, or when every candidate failed.
    pub(crate) fn tuned(
        &self,
        key: &str,
        candidates: &[&'static str],
        fallback: &'static str,
        work: u64,
        time: &mut dyn FnMut(&'static str, f64) -> Result<f64>,
    ) -> &'static str {
        let tuner = &self.inner.tuner;
        let pick = |name: &str| candidates.iter().copied().find(|c| *c == name);
        if let Some(c) = tuner.remembered(key).and_then(|n| pick(&n)) {
            return c;
        }
        if !tuner.measure || candidates.len() < 2 || work < SMALL {
            return pick(&tuner.remember(key, fallback.to_string())).unwrap_or(fallback);
        }
        // Another run on this adapter may have measured it already.
        if let Some(path) = &tuner.file {
            let held = lock(path);
            let cached = held.as_ref().and_then(|_| read_choices(path).remove(key));
            if let Some(c) = cached.as_deref().and_then(pick) {
                return pick(&tuner.remember(key, c.to_string())).unwrap_or(c);
            }
        }
        // Measure (no lock held: a candidate may tune its own kernels),
        // the heuristic's choice first.
        let Some(chosen) = measure(candidates, fallback, time) else {
            return pick(&tuner.remember(key, fallback.to_string())).unwrap_or(fallback);
        };
        // Whoever wrote the cache first wins, so that concurrent runs agree.
        let chosen = match &tuner.file {
            Some(path) => match lock(path) {
                Some(_held) => {
                    let mut all = read_choices(path);
                    let winner = all
                        .entry(key.to_string())
                        .or_insert(chosen.to_string())
                        .clone();
                    let json = serde_json::json!({
                        "adapter": self.inner.info.name,
                        "driver": format!("{} {}", self.inner.info.driver, self.inner.info.driver_info),
                        "kernels_revision": KERNELS_REVISION,
                        "choices": all,
                    });
                    // Best effort: without the cache, runs measure again.
                    let _ = crate::files::write_atomic(path, json.to_string().as_bytes());
                    pick(&winner).unwrap_or(chosen)
                }
                None => chosen,
            },
            None => chosen,
        };
        pick(&tuner.remember(key, chosen.to_string())).unwrap_or(chosen)
    }

    /// The variant choices made by this process so far, `(key, variant)`.
    pub fn tuning(&self) -> Vec<(String, String)> {
        let map = self
            .inner
            .tuner
            .choices
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Makes these choices this process's own before anything is measured
    /// (a resumed run takes its checkpoint's, so it computes exactly what
    /// the uninterrupted run would have). Choices already made stay.
    pub fn preset_tuning(&self, choices: &[(String, String)]) {
        for (k, v) in choices {
            self.inner.tuner.remember(k, v.clone());
        }
    }

    /// Whether unknown shapes are measured, and the cache file if any.
    pub fn tuning_setup(&self) -> (bool, Option<&Path>) {
        let t = &self.inner.tuner;
        (t.measure, t.file.as_deref())
    }

    /// The choices cached on disk for this adapter and driver.
    pub fn cached_tuning(&self) -> Vec<(String, String)> {
        self.inner
            .tuner
            .file
            .as_deref()
            .map(read_choices)
            .unwrap_or_default()
            .into_iter()
            .collect()
    }
}

/// Two candidates whose first times lie within this factor are timed
/// again: a close race may have been decided by load that came and went.
const CLOSE: f64 = 1.25;

/// The fastest of `candidates` by `time` (see [`Gpu::tuned`]), `fallback`
/// first; `None` when every candidate failed. When the two fastest are
/// within [`CLOSE`], each runs once more, alternating, and keeps its better
/// time: a run of another process during one candidate's turn, which
/// slowed it by 10% or more on a shared 2-core machine and was cached for
/// good, then no longer decides alone.
fn measure(
    candidates: &[&'static str],
    fallback: &'static str,
    time: &mut dyn FnMut(&'static str, f64) -> Result<f64>,
) -> Option<&'static str> {
    let mut order: Vec<&'static str> = candidates.to_vec();
    order.sort_by_key(|c| *c != fallback);
    let mut times: Vec<(&'static str, f64)> = Vec::new();
    for c in order {
        let to_beat = times.iter().map(|t| t.1).fold(f64::INFINITY, f64::min);
        if let Ok(t) = time(c, to_beat) {
            times.push((c, t));
        }
    }
    times.sort_by(|a, b| a.1.total_cmp(&b.1));
    if let [first, second, ..] = times.as_mut_slice()
        && second.1 < CLOSE * first.1
    {
        for entry in [first, second] {
            if let Ok(t) = time(entry.0, f64::INFINITY) {
                entry.1 = entry.1.min(t);
            }
        }
        times.sort_by(|a, b| a.1.total_cmp(&b.1));
    }
    times.first().map(|t| t.0)
}

/// Shapes of fewer multiply-adds than this take the heuristic's variant:
/// they run in microseconds whatever the variant, and measuring each would
/// cost more than it could save.
pub(crate) const SMALL: u64 = 1 << 22;

/// Seconds of the faster of two calls of `f`, each submitted and waited
/// for, after a first call that compiles the pipelines (two, because one
/// run of a close pair of variants is as often decided by noise as by
/// speed); when that first call already took more than three times
/// `to_beat` (plus the time a compile may take), its time is returned
/// instead, without further calls.
pub(crate) fn time_run(gpu: &Gpu, to_beat: f64, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let start = Instant::now();
    f()?;
    gpu.sync()?;
    let first = start.elapsed().as_secs_f64();
    if first > 3.0 * to_beat + 0.25 {
        return Ok(first);
    }
    let mut best = f64::INFINITY;
    for _ in 0..2 {
        let start = Instant::now();
        f()?;
        gpu.sync()?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    /// `measure` with scripted times: each candidate's successive calls
    /// return the next of its times (an error past the end); returns the
    /// winner and the calls made, in order.
    fn race(
        script: &[(&'static str, &[f64])],
        fallback: &'static str,
    ) -> (Option<&'static str>, Vec<&'static str>) {
        let names: Vec<&'static str> = script.iter().map(|s| s.0).collect();
        let mut next = vec![0usize; script.len()];
        let mut calls = Vec::new();
        let mut time = |c: &'static str, _to_beat: f64| -> Result<f64> {
            calls.push(c);
            let i = names.iter().position(|n| *n == c).unwrap();
            let t = script[i].1.get(next[i]).copied();
            next[i] += 1;
            t.ok_or_else(|| Error::invalid("race", format!("{c} cannot run")))
        };
        let winner = measure(&names, fallback, &mut time);
        (winner, calls)
    }

    #[test]
    fn a_clear_winner_is_timed_once() {
        let (w, calls) = race(&[("a", &[2.0]), ("b", &[1.0]), ("c", &[])], "a");
        assert_eq!(w, Some("b"));
        assert_eq!(calls, ["a", "b", "c"]);
    }

    #[test]
    fn a_close_race_is_run_again() {
        // "a" was slowed during its first turn: run again, it wins.
        let (w, calls) = race(&[("a", &[1.1, 0.7]), ("b", &[1.0, 1.0])], "a");
        assert_eq!(w, Some("a"));
        assert_eq!(calls, ["a", "b", "b", "a"]);
        // A second look that is slower keeps the first time.
        let (w, _) = race(&[("a", &[1.1, 1.3]), ("b", &[1.0, 1.2])], "a");
        assert_eq!(w, Some("b"));
    }

    #[test]
    fn ties_keep_the_heuristic_and_failures_fall_back() {
        let (w, _) = race(&[("b", &[1.0, 1.0]), ("a", &[1.0, 1.0])], "a");
        assert_eq!(w, Some("a"));
        let (w, calls) = race(&[("a", &[]), ("b", &[])], "a");
        assert_eq!((w, calls.len()), (None, 2));
    }
}
