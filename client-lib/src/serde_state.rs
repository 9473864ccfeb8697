//! Heap state with serde: the app registers its state once per instance (in `init` and
//! `post_upgrade`), and the library serializes it with rmp-serde (MessagePack) into staging for
//! a dump, and deserializes a staged image into it on a restore's commit.
//!
//! Across an upgrade, `pre_upgrade` saves the state into UPGRADE (its length u64, then the
//! bytes) and `post_upgrade` loads it from there; the bytes stay, so a dump may read them
//! instead of serializing the state (`DumpBegin::from_upgrade_save`), within what an upgrade may
//! execute rather than one update. UPGRADE_SAVED (memory 13) says whether they are the state
//! the app had at its last upgrade: little endian, version 1 | present u8 | generation u32 |
//! saved at u64 (nanoseconds) | length u64 | instructions u64 (what `pre_upgrade` had taken once
//! it saved them) | state layout (present u8, u32: what the saving module declared) | load
//! instructions u64 (what `post_upgrade` took to decode them). `save_for_upgrade` marks it absent
//! before it writes,
//! and `load_after_upgrade` present, one generation on, once it loaded those bytes (so a save by
//! any release's library is described by the library that loads it); a dump of them reads them
//! only while their generation is the one it opened on.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::thread::LocalKey;

use ic_stable_structures::Memory;
use serde::Serialize;
use serde::de::DeserializeOwned;
use vault_api::protocol::{StateKind, WASM_PAGE_SIZE};

use vault_api::codec::{Reader, Writer};

use crate::layout;
use crate::store::{self, ReadBuffer};
use crate::upgrade_restore;

type DumpFn = Box<dyn Fn(&mut dyn Write) -> Result<(), rmp_serde::encode::Error>>;
type LoadFn = Box<dyn Fn(&mut dyn Read) -> Result<(), rmp_serde::decode::Error>>;

struct Hooks {
    dump: DumpFn,
    load: LoadFn,
}

thread_local! {
    static HOOKS: RefCell<Option<Hooks>> = const { RefCell::new(None) };
}

/// Registers `state` as the app's backed-up state. Call it in `init` and in `post_upgrade`.
pub fn use_serde_state<T: Serialize + DeserializeOwned + 'static>(state: &'static LocalKey<RefCell<T>>) {
    HOOKS.with_borrow_mut(|hooks| {
        *hooks = Some(Hooks {
            dump: Box::new(move |w| state.with_borrow(|s| rmp_serde::encode::write_named(w, s))),
            load: Box::new(move |r| {
                // The state is replaced only once the whole image decoded.
                let value: T = rmp_serde::decode::from_read(r)?;
                state.with_borrow_mut(|s| *s = value);
                Ok(())
            }),
        })
    });
    store::update_header(|h| h.state_kind = Some(StateKind::Serde));
}

pub fn registered() -> bool {
    HOOKS.with_borrow(|h| h.is_some())
}

/// The kind of state this app backs up: serde if it registered a serde state, else its
/// stable memory.
pub fn state_kind() -> StateKind {
    store::header().state_kind.unwrap_or(if registered() { StateKind::Serde } else { StateKind::StableMemory })
}

pub fn dump(w: &mut dyn Write) -> Result<(), rmp_serde::encode::Error> {
    HOOKS.with_borrow(|h| (h.as_ref().expect("checked by the caller").dump)(w))
}

pub fn load(r: &mut dyn Read) -> Result<(), rmp_serde::decode::Error> {
    HOOKS.with_borrow(|h| (h.as_ref().expect("checked by the caller").load)(r))
}

/// The state saved by the app's last upgrade, as UPGRADE_SAVED describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpgradeSave {
    pub generation: u32,
    pub saved_at: u64,
    pub len: u64,
    /// The instructions `pre_upgrade` had taken once it saved them.
    pub instructions: u64,
    /// The state layout the module that saved them declared (`set_state_layout`).
    pub state_layout: Option<u32>,
    /// The instructions `post_upgrade` took to decode them (0 until one did).
    pub load_instructions: u64,
}

const SAVE_RECORD_BYTES: usize = 1 + 1 + 4 + 8 + 8 + 8 + 5 + 8;

/// The state the last upgrade saved, if UPGRADE holds it as the app had it.
pub fn upgrade_save() -> Option<UpgradeSave> {
    let (present, save) = saved_record();
    present.then_some(save)
}

/// UPGRADE_SAVED's record: whether it is present, and the save (generation 0 before any).
fn saved_record() -> (bool, UpgradeSave) {
    let memory = store::memory(layout::UPGRADE_SAVED);
    if memory.size() == 0 {
        return (false, UpgradeSave { generation: 0, saved_at: 0, len: 0, instructions: 0, state_layout: None, load_instructions: 0 });
    }
    let mut bytes = [0; SAVE_RECORD_BYTES];
    memory.read(0, &mut bytes);
    let mut r = Reader::new(&bytes);
    assert_eq!(r.u8(), 1, "an upgrade save record of another version");
    let present = r.u8() == 1;
    let (generation, saved_at, len, instructions) = (r.u32(), r.u64(), r.u64(), r.u64());
    let state_layout = (r.u8() == 1, r.u32());
    let state_layout = state_layout.0.then_some(state_layout.1);
    (present, UpgradeSave { generation, saved_at, len, instructions, state_layout, load_instructions: r.u64() })
}

fn set_saved_record(present: bool, save: UpgradeSave) {
    let memory = store::memory(layout::UPGRADE_SAVED);
    if memory.size() == 0 && memory.grow(1) < 0 {
        ic_cdk::trap("stable memory cannot hold the library's records");
    }
    let mut w = Writer::with_capacity(SAVE_RECORD_BYTES);
    w.u8(1).u8(present as u8).u32(save.generation).u64(save.saved_at).u64(save.len).u64(save.instructions);
    w.u8(save.state_layout.is_some() as u8).u32(save.state_layout.unwrap_or(0)).u64(save.load_instructions);
    memory.write(0, &w.into_vec());
}

/// What decoding the state `save` describes (just saved, by a `pre_upgrade` that took
/// `save.instructions`) takes: the last decode's rate, a quarter more, for its length; twice its
/// encoding before any decode was measured.
fn fallback_estimate(save: &UpgradeSave) -> u64 {
    match (save.load_instructions, save.len) {
        (0, _) | (_, 0) => save.instructions.saturating_mul(2),
        (load, len) => (load as u128 * 5 / 4 * upgrade_save_len() as u128 / len as u128).min(u64::MAX as u128) as u64,
    }
}

/// The length of the bytes UPGRADE holds (0 if none).
fn upgrade_save_len() -> u64 {
    let memory = store::memory(layout::UPGRADE);
    if memory.size() == 0 {
        return 0;
    }
    let mut len = [0u8; 8];
    memory.read(0, &mut len);
    u64::from_le_bytes(len)
}

/// Reads `len` bytes of the saved state from `offset`.
pub fn read_upgrade_save(offset: u64, len: usize) -> Vec<u8> {
    let mut buf = ReadBuffer::with_capacity(len);
    buf.read(&store::memory(layout::UPGRADE), 8 + offset, len);
    buf.into_vec()
}

/// Keeps `state` across an upgrade: call it in `pre_upgrade` (the upgrade's 300B instructions
/// apply there).
pub fn save_for_upgrade<T: Serialize>(state: &'static LocalKey<RefCell<T>>) {
    let (_, save) = saved_record();
    set_saved_record(false, save);
    let bytes = state.with_borrow(rmp_serde::to_vec_named).unwrap_or_else(|e| ic_cdk::trap(format!("serializing the state for the upgrade: {e}")));
    let memory = store::memory(layout::UPGRADE);
    let needed = (bytes.len() as u64 + 8).div_ceil(WASM_PAGE_SIZE);
    if memory.size() < needed && memory.grow(needed - memory.size()) < 0 {
        ic_cdk::trap("stable memory cannot hold the state for the upgrade");
    }
    memory.write(0, &(bytes.len() as u64).to_le_bytes());
    memory.write(8, &bytes);
    let (instructions, state_layout) = (ic_cdk::api::performance_counter(0), crate::state_layout());
    set_saved_record(false, UpgradeSave { instructions, state_layout, ..save });
}

/// Loads the state `save_for_upgrade` kept into `state` and registers it: call it in
/// `post_upgrade`. A restore its vault staged for this upgrade (`vault restore --via-upgrade`)
/// is loaded instead, if it decodes within what the upgrade leaves it; if not, the kept state
/// is, and the app's backup info says why (`upgrade_restore`). It opens the library's memory
/// first, so a layout this build cannot read traps the upgrade before the kept state is read.
pub fn load_after_upgrade<T: Serialize + DeserializeOwned + 'static>(state: &'static LocalKey<RefCell<T>>) {
    store::open();
    let (_, previous) = saved_record();
    if let Some(restored) = upgrade_restore::load::<T>(ic_cdk::api::time(), previous.instructions, fallback_estimate(&previous)) {
        // The saved bytes are not the state the app goes on with.
        set_saved_record(false, previous);
        state.with_borrow_mut(|s| *s = restored);
        use_serde_state(state);
        return;
    }
    let memory = store::memory(layout::UPGRADE);
    if memory.size() > 0 {
        let mut len = [0u8; 8];
        memory.read(0, &mut len);
        let mut bytes = vec![0u8; u64::from_le_bytes(len) as usize];
        memory.read(8, &mut bytes);
        if !bytes.is_empty() {
            let start = ic_cdk::api::performance_counter(0);
            let value: T = rmp_serde::from_slice(&bytes).unwrap_or_else(|e| ic_cdk::trap(format!("loading the state after the upgrade: {e}")));
            state.with_borrow_mut(|s| *s = value);
            let load_instructions = ic_cdk::api::performance_counter(0).saturating_sub(start);
            let generation = previous.generation.wrapping_add(1);
            let save = UpgradeSave { generation, saved_at: ic_cdk::api::time(), len: bytes.len() as u64, load_instructions, ..previous };
            set_saved_record(true, save);
        }
    }
    use_serde_state(state);
}
