//! A canister's log as `fetch_canister_logs` returns it: the lines replicated executions print
//! and the traps that end them, numbered in order, at most 4 KiB of them with the oldest
//! dropped first, kept across upgrades and purged by a reinstall or an uninstall.
//!
//! Sources: rs/types/types/src/canister_log.rs (the buffer, its size, a record's size),
//! rs/embedders wasm_executor.rs (the `[TRAP]` record) and the interface spec's
//! `fetch_canister_logs` (no record from non-replicated executions).

use std::collections::VecDeque;

use ic_management_canister_types::{CanisterLogFilter, CanisterLogRecord};

use crate::canister::ExecError;

/// Bytes the log holds (`MAX_ALLOWED_CANISTER_LOG_BUFFER_SIZE`).
pub const LOG_BUFFER_BYTES: usize = 4096;

/// Bytes a record takes besides its content: the replica's record (two `u64` and a `Vec`).
const RECORD_BYTES: usize = 40;

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CanisterLog {
    next_idx: u64,
    records: VecDeque<CanisterLogRecord>,
    used_bytes: usize,
}

impl CanisterLog {
    /// Records an execution's lines and, if it ended in a trap, the trap.
    pub fn record(&mut self, time: u64, lines: &[Vec<u8>], error: Option<&ExecError>) {
        for line in lines {
            self.add(time, line.clone());
        }
        if let Some(line) = error.and_then(ExecError::canister_log_line) {
            self.add(time, line);
        }
    }

    fn add(&mut self, time: u64, mut content: Vec<u8>) {
        content.truncate(LOG_BUFFER_BYTES - RECORD_BYTES);
        let size = RECORD_BYTES + content.len();
        while self.used_bytes + size > LOG_BUFFER_BYTES {
            let Some(oldest) = self.records.pop_front() else { break };
            self.used_bytes -= RECORD_BYTES + oldest.content.len();
        }
        self.records.push_back(CanisterLogRecord { idx: self.next_idx, timestamp_nanos: time, content });
        self.used_bytes += size;
        self.next_idx += 1;
    }

    /// Drops every record; numbering goes on.
    pub fn purge(&mut self) {
        self.records.clear();
        self.used_bytes = 0;
    }

    /// The records `filter` selects (a half-open range of indexes or timestamps), oldest first.
    pub fn records(&self, filter: Option<&CanisterLogFilter>) -> Vec<CanisterLogRecord> {
        let selected = |r: &CanisterLogRecord| match filter {
            None => true,
            Some(CanisterLogFilter::ByIdx { start, end }) => (*start..*end).contains(&r.idx),
            Some(CanisterLogFilter::ByTimestampNanos { start, end }) => (*start..*end).contains(&r.timestamp_nanos),
        };
        self.records.iter().filter(|r| selected(r)).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_records_go_first_and_numbering_goes_on() {
        let mut log = CanisterLog::default();
        for i in 0..10u8 {
            log.add(u64::from(i), vec![i; 1000]);
        }
        let records = log.records(None);
        // Each record takes 1,040 bytes: three fit in 4 KiB.
        assert_eq!(records.iter().map(|r| r.idx).collect::<Vec<_>>(), [7, 8, 9]);
        log.purge();
        log.add(10, b"after".to_vec());
        assert_eq!(log.records(None)[0].idx, 10);
    }

    #[test]
    fn a_record_larger_than_the_log_is_cut_to_fit() {
        let mut log = CanisterLog::default();
        log.add(0, vec![1; 10_000]);
        assert_eq!(log.records(None)[0].content.len(), LOG_BUFFER_BYTES - RECORD_BYTES);
    }

    #[test]
    fn filters_select_half_open_ranges() {
        let mut log = CanisterLog::default();
        for i in 0..5 {
            log.add(100 + i, Vec::new());
        }
        let idx = |f: CanisterLogFilter| log.records(Some(&f)).iter().map(|r| r.idx).collect::<Vec<_>>();
        assert_eq!(idx(CanisterLogFilter::ByIdx { start: 1, end: 3 }), [1, 2]);
        assert_eq!(idx(CanisterLogFilter::ByTimestampNanos { start: 103, end: 200 }), [3, 4]);
        assert!(idx(CanisterLogFilter::ByIdx { start: 3, end: 3 }).is_empty());
    }
}
