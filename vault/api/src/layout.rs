//! Versions of a stored layout: which migration steps take the version in stable memory to the
//! one a build writes. The vault and the client library each keep their own version and steps.

/// A stored layout outside the range a build reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// Written by a newer release.
    #[error("the stable memory has layout {stored}, newer than the {known} this build knows: install a release that reads it")]
    Newer { stored: u8, known: u8 },
    /// Older than any this build migrates from.
    #[error(
        "the stable memory has layout {stored}, older than the {oldest} this build migrates from: upgrade through an earlier release first"
    )]
    TooOld { stored: u8, oldest: u8 },
}

/// The steps that take layout `stored` to `current`, from `steps`, one per version of
/// `oldest..current` (`steps[i]` migrates `oldest + i` to `oldest + i + 1`).
pub fn steps_from<T>(stored: u8, oldest: u8, current: u8, steps: &[T]) -> Result<&[T], LayoutError> {
    debug_assert_eq!(steps.len(), usize::from(current - oldest), "one step per version");
    if stored > current {
        return Err(LayoutError::Newer { stored, known: current });
    }
    if stored < oldest {
        return Err(LayoutError::TooOld { stored, oldest });
    }
    Ok(&steps[usize::from(stored - oldest)..])
}

#[cfg(test)]
mod tests {
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
}
