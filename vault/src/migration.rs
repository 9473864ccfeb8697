//! The stored layout's version, migrated once per upgrade (the shape of orbit's `migration.rs`).
//!
//! A build writes layout [`LAYOUT_VERSION`] and reads every layout from [`OLDEST_LAYOUT`] on:
//! `post_upgrade` runs one step per version from the stored one up, then stores the new
//! version. A stored layout newer than the build knows (an older release installed over a
//! newer layout) or older than it reads is refused before anything is touched: the upgrade
//! traps, and the IC keeps the canister as it was, on its previous module.
//!
//! Layouts:
//! - 1: as drawn in `memory.rs` (release 0.1.0 and since).

use crate::memory::{LAYOUT_VERSION, OLDEST_LAYOUT};
use crate::state::State;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// Written by a newer release.
    Newer { stored: u8, known: u8 },
    /// Older than any this build migrates from.
    TooOld { stored: u8, oldest: u8 },
}

impl std::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LayoutError::Newer { stored, known } => write!(
                f,
                "the vault's stable memory has layout {stored}, newer than the {known} this build knows: install a release that reads it"
            ),
            LayoutError::TooOld { stored, oldest } => write!(
                f,
                "the vault's stable memory has layout {stored}, older than the {oldest} this build migrates from: upgrade through an earlier release first"
            ),
        }
    }
}

/// Takes the state from one layout version to the next.
pub type Step = fn(&mut State);

/// `STEPS[i]` migrates layout `OLDEST_LAYOUT + i` to `OLDEST_LAYOUT + i + 1`.
const STEPS: [Step; (LAYOUT_VERSION - OLDEST_LAYOUT) as usize] = [];

/// The steps that take layout `stored` to `current`, from `steps` for `oldest..current`.
fn steps_from<T>(stored: u8, oldest: u8, current: u8, steps: &[T]) -> Result<&[T], LayoutError> {
    debug_assert_eq!(steps.len(), usize::from(current - oldest), "one step per version");
    if stored > current {
        return Err(LayoutError::Newer { stored, known: current });
    }
    if stored < oldest {
        return Err(LayoutError::TooOld { stored, oldest });
    }
    Ok(&steps[usize::from(stored - oldest)..])
}

/// Migrates the stored layout to [`LAYOUT_VERSION`]; refuses one this build cannot read.
pub fn migrate(state: &mut State) -> Result<(), LayoutError> {
    for step in steps_from(state.layout(), OLDEST_LAYOUT, LAYOUT_VERSION, &STEPS)? {
        step(state);
    }
    state.set_layout(LAYOUT_VERSION);
    Ok(())
}

#[cfg(test)]
mod tests {
    use ic_stable_structures::DefaultMemoryImpl;

    use super::*;

    #[test]
    fn each_version_runs_the_steps_after_it_in_order() {
        let steps = ["1 to 2", "2 to 3", "3 to 4"];
        assert_eq!(steps_from(1, 1, 4, &steps), Ok(&steps[..]));
        assert_eq!(steps_from(3, 1, 4, &steps), Ok(&steps[2..]));
        assert_eq!(steps_from(4, 1, 4, &steps), Ok(&steps[3..]), "the current layout needs none");
    }

    #[test]
    fn layouts_outside_the_readable_range_are_refused() {
        let steps = ["2 to 3"];
        assert_eq!(steps_from(4, 2, 3, &steps), Err(LayoutError::Newer { stored: 4, known: 3 }));
        assert_eq!(steps_from(1, 2, 3, &steps), Err(LayoutError::TooOld { stored: 1, oldest: 2 }));
    }

    #[test]
    fn a_newer_layout_is_refused_and_left_as_it_is() {
        let memory = DefaultMemoryImpl::default();
        let mut state = State::init(memory.clone());
        assert_eq!(migrate(&mut state), Ok(()), "a fresh state is current");
        state.set_layout(LAYOUT_VERSION + 1);
        let id = state.new_job_id();
        let mut reopened = State::init(memory);
        assert_eq!(migrate(&mut reopened), Err(LayoutError::Newer { stored: LAYOUT_VERSION + 1, known: LAYOUT_VERSION }));
        assert_eq!((reopened.layout(), reopened.new_job_id()), (LAYOUT_VERSION + 1, id + 1), "nothing was touched");
    }
}
