//! Shrinking: the fewest steps of a failing schedule that still fail the same way.

use crate::schedule::Schedule;
use crate::world::run;

/// Removes steps from `schedule` (halves, then quarters, … then single steps) as long as the
/// run still has a violation of `class`; returns the indices kept (into `schedule.steps`).
pub fn shrink(schedule: &Schedule, class: &str) -> Vec<usize> {
    let fails = |keep: &[usize]| {
        run(&schedule.keep(keep))
            .violations
            .iter()
            .any(|v| v.class == class)
    };
    let mut keep: Vec<usize> = (0..schedule.steps.len()).collect();
    let mut chunk = keep.len().div_ceil(2).max(1);
    loop {
        let mut start = 0;
        let mut removed = false;
        while start < keep.len() {
            let end = (start + chunk).min(keep.len());
            let candidate: Vec<usize> = keep[..start].iter().chain(&keep[end..]).copied().collect();
            if fails(&candidate) {
                keep = candidate;
                removed = true;
            } else {
                start = end;
            }
        }
        if chunk == 1 && !removed {
            return keep;
        }
        if !removed {
            chunk = chunk.div_ceil(2);
        }
    }
}
