//! The progress bars: one manager for a command, one bar per step, drawn on stderr when it is
//! a terminal and never with `--json`.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Bars {
    manager: MultiProgress,
    current: Option<ProgressBar>,
}

impl Bars {
    pub fn new(hidden: bool) -> Self {
        let target = if hidden { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() };
        Bars { manager: MultiProgress::with_draw_target(target), current: None }
    }
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:>9} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}")
        .expect("a valid template")
        .progress_chars("=> ")
}

impl vault_ops::progress::Progress for Bars {
    fn begin(&mut self, step: &str) {
        self.end();
        let bar = self.manager.add(ProgressBar::new(0).with_style(style()).with_prefix(step.to_string()));
        self.current = Some(bar);
    }

    fn position(&mut self, done: u64, total: u64) {
        if let Some(bar) = &self.current {
            bar.set_length(total);
            bar.set_position(done);
        }
    }

    fn end(&mut self) {
        if let Some(bar) = self.current.take() {
            bar.finish_and_clear();
            self.manager.remove(&bar);
        }
    }
}
