//! How operations report progress: the CLI draws bars, tests and scripts stay silent.

/// One step at a time: `begin`, any number of `position`s, `end`.
pub trait Progress {
    fn begin(&mut self, step: &str);
    /// `done` of the step's `total` bytes have moved (`total` is 0 while unknown).
    fn position(&mut self, done: u64, total: u64);
    fn end(&mut self);
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn begin(&mut self, _: &str) {}
    fn position(&mut self, _: u64, _: u64) {}
    fn end(&mut self) {}
}
