//! Scenarios of this group (filled in by the scenario work).

use crate::runner::Scenario;

pub fn scenarios() -> Vec<Scenario> {
    Vec::new()
}
