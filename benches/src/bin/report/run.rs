//! What one run measured ([`Run`]), and reading numbers out of it: criterion's medians per
//! round, ratios between subjects, and their [`Spread`] across rounds.

use std::error::Error;
use std::path::PathBuf;

use benches::estimates::Estimates;
use benches::machine::Machine;
use benches::pipe_cpu::Repeat;
use benches::plan;
use benches::workers::Worker;

use crate::format::{ratio, ratio_number, slowest_over_fastest, thousands};
use crate::measure::{Measured, baseline};
use crate::options::Options;

/// Everything one run measured.
pub(crate) struct Run {
    pub(crate) options: Options,
    pub(crate) machine: Machine,
    pub(crate) commit: Option<String>,
    pub(crate) date: String,
    pub(crate) minutes: f64,
    pub(crate) python: PathBuf,
    pub(crate) pinned_cpu: usize,
    pub(crate) rounds: Vec<Estimates>,
    pub(crate) pipes: Vec<(Worker, Vec<Repeat>)>,
    pub(crate) loads: Vec<Measured>,
}

/// A number across rounds: its median, lowest and highest.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spread {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Spread {
    pub(crate) fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        Self {
            median,
            min: values[0],
            max: values[n - 1],
        }
    }

    /// `0.27x (0.25-0.29x)`, or just `0.27x` for a single value.
    pub(crate) fn ratio(&self) -> String {
        if self.min == self.max {
            ratio(self.median)
        } else {
            format!(
                "{} ({}-{})",
                ratio(self.median),
                ratio_number(self.min),
                ratio(self.max)
            )
        }
    }
}

impl Run {
    /// Criterion's median time per iteration (ns) for `id` in `round` (0-based).
    pub(crate) fn ns(&self, round: usize, id: &str) -> Result<f64, Box<dyn Error>> {
        self.rounds[round]
            .get(id)
            .map(|estimate| estimate.median_ns)
            .ok_or_else(|| {
                format!(
                    "no result for {id} in {} (did the bench run?)",
                    baseline(round + 1)
                )
                .into()
            })
    }

    /// `f(round)` for every round.
    pub(crate) fn per_round(
        &self,
        f: impl Fn(usize) -> Result<f64, Box<dyn Error>>,
    ) -> Result<Vec<f64>, Box<dyn Error>> {
        (0..self.rounds.len()).map(f).collect()
    }

    /// pool-core's time over `rival`'s in `group`, per round.
    pub(crate) fn versus(&self, group: &str, rival: &str) -> Result<Vec<f64>, Box<dyn Error>> {
        self.per_round(|r| {
            Ok(self.ns(r, &format!("{group}/pool-core"))?
                / self.ns(r, &format!("{group}/{rival}"))?)
        })
    }

    /// `subject`'s time at each scaling size in `round`.
    pub(crate) fn scaling_times(
        &self,
        round: usize,
        group: &str,
        subject: &str,
    ) -> Result<Vec<f64>, Box<dyn Error>> {
        plan::SCALING_SIZES
            .iter()
            .map(|size| self.ns(round, &format!("{group}/{subject}/{size}")))
            .collect()
    }

    /// pool-core's slowest over its fastest pool size in a scaling group, per round.
    pub(crate) fn scaling_spread(&self, group: &str) -> Result<Vec<f64>, Box<dyn Error>> {
        self.per_round(|r| {
            Ok(slowest_over_fastest(&self.scaling_times(
                r,
                group,
                "pool-core",
            )?))
        })
    }

    /// Which pool sizes were slowest and fastest for pool-core in a scaling group, by the
    /// median over rounds: `"slowest at 8 objects, fastest at 1,024"`.
    pub(crate) fn scaling_extremes(&self, group: &str) -> Result<String, Box<dyn Error>> {
        let mut medians = Vec::new();
        for (i, size) in plan::SCALING_SIZES.iter().enumerate() {
            let times = self.per_round(|r| Ok(self.scaling_times(r, group, "pool-core")?[i]))?;
            medians.push((Spread::of(times).median, *size));
        }
        medians.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(format!(
            "slowest at {} objects, fastest at {}",
            thousands(medians[medians.len() - 1].1),
            thousands(medians[0].1)
        ))
    }

    pub(crate) fn worker_ns(&self, worker: Worker, path: &str) -> Result<f64, Box<dyn Error>> {
        self.ns(
            0,
            &format!("{}/{path}", plan::group_subprocess(worker.name())),
        )
    }
}
