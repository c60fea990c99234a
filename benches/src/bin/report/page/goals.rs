//! The goals of the page, each checked against this run.

use std::error::Error;

use benches::pipe_cpu::Repeat;
use benches::plan;
use benches::workers::Worker;

use crate::format::{plural, ratio, table};
use crate::run::{Run, Spread};

/// One goal and how this run did.
struct Goal {
    what: String,
    target: String,
    measured: String,
    pass: bool,
}

impl Run {
    fn goals(&self) -> Result<Vec<Goal>, Box<dyn Error>> {
        let mut goals = Vec::new();
        let rounds = self.rounds.len();
        let vs_deadpool = |group: &str, label: &str, target: f64| -> Result<Goal, Box<dyn Error>> {
            let spread = Spread::of(self.versus(group, "deadpool")?);
            Ok(Goal {
                what: format!("get+drop, pool-core / deadpool, {label}"),
                target: format!("<= {}", ratio(target)),
                measured: format!("{} over {}", spread.ratio(), plural(rounds, "round")),
                pass: spread.median <= target,
            })
        };
        goals.push(vs_deadpool(plan::GROUP_UNCONTENDED, "uncontended", 0.3)?);
        for (tasks, objects) in plan::CONTENDED {
            goals.push(vs_deadpool(
                &plan::group_contended(tasks, objects),
                &format!("contended, {tasks} tasks / {objects} objects"),
                0.6,
            )?);
        }
        for (group, label) in [
            (plan::GROUP_SCALING_UNCONTENDED, "uncontended"),
            (
                plan::GROUP_SCALING_CONTENDED,
                "contended, 8 tasks per object",
            ),
        ] {
            let spread = Spread::of(self.scaling_spread(group)?);
            goals.push(Goal {
                what: format!(
                    "pool-core at 8, 128 and 1,024 objects, {label}: slowest size / fastest"
                ),
                target: "<= 1.50x".into(),
                measured: format!(
                    "{} over {}; {}",
                    spread.ratio(),
                    plural(rounds, "round"),
                    self.scaling_extremes(group)?
                ),
                pass: spread.median <= 1.5,
            });
        }
        for (worker, repeats) in &self.pipes {
            let cpu = Spread::of(repeats.iter().map(Repeat::cpu_ratio).collect());
            let wall = Spread::of(repeats.iter().map(Repeat::wall_ratio).collect());
            goals.push(Goal {
                what: format!(
                    "warm pool call / raw pipe, {}: CPU time per call (pinned)",
                    worker.name()
                ),
                target: "<= 1.20x".into(),
                measured: format!(
                    "{} CPU, {} wall, over {}",
                    cpu.ratio(),
                    wall.ratio(),
                    plural(repeats.len(), "repeat")
                ),
                pass: cpu.median <= 1.2,
            });
        }
        let speedup = self.worker_ns(Worker::Python, "spawn_per_job")?
            / self.worker_ns(Worker::Python, "warm_call")?;
        goals.push(Goal {
            what: "warm python call vs spawning the same interpreter per job (wall)".into(),
            target: ">= 100x faster".into(),
            measured: format!("{} faster, in one run", ratio(speedup)),
            pass: speedup >= 100.0,
        });
        Ok(goals)
    }

    pub(super) fn goals_table(&self) -> Result<String, Box<dyn Error>> {
        let goals = self.goals()?;
        let met = goals.iter().filter(|goal| goal.pass).count();
        let rows = goals
            .iter()
            .map(|goal| {
                vec![
                    goal.what.clone(),
                    goal.target.clone(),
                    goal.measured.clone(),
                    if goal.pass { "**PASS**" } else { "**MISS**" }.into(),
                ]
            })
            .collect();
        Ok(format!(
            "{}\n{met} of {} goals met. A ratio across rounds is the median of the rounds' \
             ratios, with the lowest and highest in brackets; PASS or MISS is decided on the \
             median.\n",
            table(&["goal", "target", "measured", "result"], rows),
            goals.len()
        ))
    }
}
