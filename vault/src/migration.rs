//! The stored layout's version, migrated once per upgrade (the shape of orbit's `migration.rs`).
//!
//! A build writes layout [`LAYOUT_VERSION`] and reads every layout from [`OLDEST_LAYOUT`] on:
//! `post_upgrade` runs one step per version from the stored one up, then stores the new
//! version. A stored layout newer than the build knows (an older release installed over a
//! newer layout) or older than it reads is refused before anything is touched: the upgrade
//! traps, and the IC keeps the canister as it was, on its previous module. Which steps run is
//! `vault_api::layout::steps_from`, which the client library's layout uses too.
//!
//! Layouts:
//! - 1: as drawn in `memory.rs` (release 0.1.0 and since).

pub use vault_api::layout::LayoutError;
use vault_api::layout::steps_from;

use crate::memory::{LAYOUT_VERSION, OLDEST_LAYOUT};
use crate::state::State;

/// Takes the state from one layout version to the next.
pub type Step = fn(&mut State);

/// `STEPS[i]` migrates layout `OLDEST_LAYOUT + i` to `OLDEST_LAYOUT + i + 1`.
const STEPS: [Step; (LAYOUT_VERSION - OLDEST_LAYOUT) as usize] = [];

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
