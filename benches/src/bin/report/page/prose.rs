//! The sentences of the page that follow the data: what the scaling and one-shot numbers
//! say, and what other load did to the measurements.

use std::error::Error;

use benches::load;
use benches::plan;

use crate::format::{ratio, thousands, time};
use crate::measure::{ATTEMPTS, Measured};
use crate::run::{Run, Spread};

impl Run {
    /// What the contended scaling numbers of this run say, in words that follow the data.
    pub(super) fn scaling_comment(&self) -> Result<String, Box<dyn Error>> {
        let group = plan::GROUP_SCALING_CONTENDED;
        let sizes = plan::SCALING_SIZES;
        let last = sizes.len() - 1;
        let median_at = |subject: &str, i: usize| -> Result<f64, Box<dyn Error>> {
            let times = self.per_round(|r| Ok(self.scaling_times(r, group, subject)?[i]))?;
            Ok(Spread::of(times).median)
        };
        let ours_at = (0..sizes.len())
            .map(|i| median_at("pool-core", i))
            .collect::<Result<Vec<_>, _>>()?;
        let ours = (ours_at[0], ours_at[last]);
        let slowest = (0..sizes.len())
            .max_by(|&a, &b| ours_at[a].total_cmp(&ours_at[b]))
            .unwrap_or(0);
        let where_missed = if slowest == 0 {
            "where the 1.5x band is missed, it is because the small pool is the slow one".to_owned()
        } else {
            format!(
                "the slowest median here is at {} objects, in rounds that stand far from the \
                 others in the table above",
                thousands(sizes[slowest])
            )
        };
        let floor = (
            median_at("semaphore+mutex", 0)?,
            median_at("semaphore+mutex", last)?,
        );
        let mut versus_floor = Vec::new();
        for i in 0..sizes.len() {
            let per_round = self.per_round(|r| {
                Ok(self.scaling_times(r, group, "pool-core")?[i]
                    / self.scaling_times(r, group, "semaphore+mutex")?[i])
            })?;
            versus_floor.push(Spread::of(per_round).median);
        }
        let ratios = versus_floor
            .iter()
            .map(|r| ratio(*r))
            .collect::<Vec<_>>()
            .join(", ");
        let mut text = format!(
            "Contended, from {} to {} objects (medians of the rounds), pool-core's time per \
             get+drop goes from {} to {} and the floor's from {} to {} under the same load; \
             pool-core / floor is {ratios} at the three sizes. ",
            thousands(sizes[0]),
            thousands(sizes[last]),
            time(ours.0),
            time(ours.1),
            time(floor.0),
            time(floor.1),
        );
        if ours.1 <= ours.0 && versus_floor[last] <= versus_floor[0] {
            text.push_str(&format!(
                "So pool-core gets cheaper per get+drop from the smallest to the largest pool, \
                 not dearer; {where_missed}. Part of the fall is the \
                 scheduler's: with eight times as many tasks as objects (64 to 8,192 tasks on \
                 two worker threads) the floor falls {} too. The rest is pool-core's own: its \
                 time over the floor's goes from {} to {}.",
                ratio(floor.0 / floor.1),
                ratio(versus_floor[0]),
                ratio(versus_floor[last]),
            ));
        } else if ours.1 <= ours.0 {
            text.push_str(&format!(
                "pool-core gets cheaper as it grows, but less than the floor under the same \
                 load (which falls {}): its time over the floor's goes from {} to {}.",
                ratio(floor.0 / floor.1),
                ratio(versus_floor[0]),
                ratio(versus_floor[last]),
            ));
        } else {
            text.push_str(&format!(
                "pool-core gets dearer as it grows: {} from {} to {} objects, with its time \
                 over the floor's going from {} to {}.",
                ratio(ours.1 / ours.0),
                thousands(sizes[0]),
                thousands(sizes[last]),
                ratio(versus_floor[0]),
                ratio(versus_floor[last]),
            ));
        }
        text.push('\n');
        Ok(text)
    }

    /// What the one-shot numbers say, in words that follow the data.
    pub(super) fn one_shot_comment(&self) -> Result<String, Box<dyn Error>> {
        let pooled = self.ns(0, &format!("{}/command_pool", plan::GROUP_ONE_SHOT))?;
        let bare = self.ns(0, &format!("{}/bare_command", plan::GROUP_ONE_SHOT))?;
        Ok(if pooled <= bare {
            "`CommandPool` came out no slower than the bare spawn: its overhead is below \
             this bench's noise (a spawn's time varies by tens of percent between runs on \
             this VM), so this is not a speedup.\n"
                .to_owned()
        } else {
            format!(
                "`CommandPool` added {} per command ({} of a bare spawn) in this run; {}\n",
                time(pooled - bare),
                ratio(pooled / bare),
                if pooled / bare <= 1.3 {
                    "a spawn's time varies by tens of percent between runs on this VM, so \
                     that is within noise."
                } else {
                    "that is more than a spawn's run-to-run noise on this VM."
                }
            )
        })
    }

    /// `criterion round 1: 0.01, ...` for the loads measured in this run.
    pub(super) fn load_summary(&self) -> String {
        if self.loads.is_empty() {
            return "not measured for the reused criterion results".into();
        }
        self.loads
            .iter()
            .map(|m| {
                let mut text = format!("{} {:.2}", m.what, m.load.other_cpus);
                if m.load.steal_cpus >= 0.005 {
                    text.push_str(&format!(" (steal {:.2})", m.load.steal_cpus));
                }
                if m.attempts > 1 {
                    text.push_str(&format!(
                        " (attempt {}, earlier ones disturbed)",
                        m.attempts
                    ));
                }
                text
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// A warning for the top of the page when other load disturbed a measurement.
    pub(super) fn load_warning(&self) -> String {
        let disturbed: Vec<&Measured> = self.loads.iter().filter(|m| m.load.disturbed()).collect();
        if disturbed.is_empty() {
            return String::new();
        }
        format!(
            "**Warning: other processes kept more than {} CPUs busy during {} even after {} \
             attempts; those numbers are disturbed. Run the command again on a quiet \
             machine.**\n\n",
            load::DISTURBED,
            disturbed
                .iter()
                .map(|m| m.what.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            ATTEMPTS
        )
    }
}
