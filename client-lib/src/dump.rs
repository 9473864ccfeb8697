//! Snapshots: freezing the state, serving it in chunks, releasing it. Each call is the vault's
//! (the endpoint checked that), for the session its `key` names. A chunk carries its SHA-256
//! only for a vault that asks for it (one before BLAKE3): the vault hashes every chunk itself.
//! A stable-memory dump against a base its vault named (`DumpBegin::base`) that the app still
//! holds is incremental: each chunk carries the pages that differ from the base's; at its end the
//! vault may name it the next base (`DumpEnd::base`). A serde dump with a content index
//! (`DumpBegin::content_index`) records its chunks' pieces as they are read, and may likewise
//! become the base, against which each chunk carries the ranges found in the base's image and
//! the bytes of the rest (`content_index`). A serde dump may read the state the app's last
//! upgrade saved (`DumpBegin::from_upgrade_save`), taken when it was saved, instead of
//! serializing the state in this message.

use vault_api::manifest::{self, Sha256};
use vault_api::protocol::DumpBegin;
use vault_api::protocol::{BackupError, CHUNK_SIZE, Chunk, DumpManifest, StateKind, WASM_PAGE_SIZE};

use crate::layout::{Base, OpenDump, SessionKey};
use crate::staging::{self, Exceeded, StagingWriter};
use crate::store::ReadBuffer;
use crate::{content_index, pages, serde_state, session, store, upgrade_restore};

/// Opens `key`'s dump at `now` as `args` asks, or answers the one open for it again; its
/// manifest says the app declares `state_layout`.
pub fn begin(key: SessionKey, args: &DumpBegin, now: u64, state_layout: Option<u32>) -> Result<DumpManifest, BackupError> {
    if let Some(dump) = session::dump(&key) {
        session::touch(now);
        return Ok(manifest_of(&dump, state_layout));
    }
    let from_upgrade_save = args.from_upgrade_save == Some(true);
    let dump = session::open_dump(|| {
        let (kind, size, frozen_generation, taken_at_nanos) = match serde_state::state_kind() {
            StateKind::StableMemory if from_upgrade_save => {
                return Err(BackupError::NoUpgradeSave { reason: "the app backs up its stable memory, which an upgrade keeps as it is".into() });
            }
            StateKind::StableMemory => {
                let size = store::header().app_pages * WASM_PAGE_SIZE;
                (StateKind::StableMemory, size, pages::freeze(), now)
            }
            StateKind::Native => unreachable!("a library app's state is serde or stable memory"),
            StateKind::Serde if from_upgrade_save => {
                let save = serde_state::upgrade_save().ok_or_else(|| BackupError::NoUpgradeSave {
                    reason: "the app's last upgrade left no saved state to dump: its pre_upgrade calls save_for_upgrade and its \
                             post_upgrade load_after_upgrade, which then loads that state (not a restore in its place)"
                        .into(),
                })?;
                (StateKind::Serde, save.len, save.generation, save.saved_at)
            }
            StateKind::Serde => (StateKind::Serde, serialize()?, 0, now),
        };
        let chunk_hashes = args.chunk_hashes != Some(false);
        let indexed = kind == StateKind::Serde && args.content_index == Some(true);
        let incremental = args.base.is_some_and(|snapshot| builds_on(&key, kind, indexed, snapshot));
        if indexed {
            content_index::clear_recorded();
        }
        Ok(OpenDump {
            key,
            kind,
            size,
            chunk_size: CHUNK_SIZE,
            taken_at_nanos,
            frozen_generation,
            touched_at_nanos: now,
            chunk_hashes,
            incremental,
            from_upgrade_save,
            content_index: indexed,
        })
    })?;
    session::touch(now);
    Ok(manifest_of(&dump, state_layout))
}

/// Whether a dump of `kind` opened for `key` builds on the base `snapshot` (`indexed`: a serde
/// dump with a content index): if the app holds it, of that kind, for that vault instance, and a
/// serde base by its content index.
fn builds_on(key: &SessionKey, kind: StateKind, indexed: bool, snapshot: u64) -> bool {
    match session::base(key, snapshot) {
        Some(base) if base.kind != kind => false,
        Some(_) => kind == StateKind::StableMemory || (indexed && content_index::indexes(snapshot)),
        None => false,
    }
}

/// Serializes the registered state into staging; returns its size.
fn serialize() -> Result<u64, BackupError> {
    if !serde_state::registered() {
        return Err(BackupError::Serialization {
            message: "the app registered no serde state: call vault_client::use_serde_state in init and post_upgrade".into(),
        });
    }
    upgrade_restore::supersede("a dump");
    let (last_bytes, last_instructions) = store::header().serde_cost;
    let start = ic_cdk::api::performance_counter(0);
    let mut writer = StagingWriter::default();
    let result = serde_state::dump(&mut writer);
    let used = ic_cdk::api::performance_counter(0) - start;
    match (result, writer.exceeded) {
        (Ok(()), _) => {
            store::update_header(|h| h.serde_cost = (writer.written, used));
            Ok(writer.written)
        }
        (Err(_), Some(Exceeded::Instructions)) => {
            // Estimate the whole from the last complete dump's rate, or from this partial one.
            let per_byte = if last_bytes > 0 { last_instructions as f64 / last_bytes as f64 } else { used as f64 / writer.written.max(1) as f64 };
            let size = last_bytes.max(writer.written);
            Err(BackupError::TooLargeForOneMessage {
                size,
                estimated_instructions: (size as f64 * per_byte) as u64,
                limit: staging::INSTRUCTION_BUDGET,
            })
        }
        (Err(_), Some(Exceeded::Bytes)) => {
            Err(BackupError::TooLarge { size: writer.written, limit: staging::MAX_STAGED_BYTES })
        }
        (Err(e), None) => Err(BackupError::Serialization { message: e.to_string() }),
    }
}

fn manifest_of(dump: &OpenDump, state_layout: Option<u32>) -> DumpManifest {
    // The state an upgrade saved is in the layout of the module that saved it.
    let state_layout = if dump.from_upgrade_save { serde_state::upgrade_save().and_then(|save| save.state_layout) } else { state_layout };
    DumpManifest {
        job: dump.key.job,
        state_kind: dump.kind,
        size: dump.size,
        chunk_size: dump.chunk_size,
        taken_at_nanos: dump.taken_at_nanos,
        state_layout,
        content_hashes: Some(crate::restore::CONTENT_HASHES.to_vec()),
        base: store::header().base.filter(|_| dump.incremental).map(|base| base.snapshot),
        from_upgrade_save: dump.from_upgrade_save.then_some(true),
        content_index: dump.content_index.then_some(true),
    }
}

/// Chunk `index` of `key`'s dump, with its SHA-256 if the dump's vault asked for it, else zeros.
/// A dump with a content index records the chunk's pieces; no other records anything.
pub fn chunk(key: SessionKey, index: u32) -> Result<Chunk, BackupError> {
    let dump = session::dump(&key).ok_or(BackupError::UnknownJob { job: key.job })?;
    let chunks = manifest::chunk_count(dump.size, dump.chunk_size);
    if index >= chunks {
        return Err(BackupError::ChunkOutOfRange { index, chunks });
    }
    let range = manifest::chunk_range(dump.size, dump.chunk_size, index);
    if dump.incremental && dump.kind == StateKind::StableMemory {
        let (data, bitmap) = pages::changed_pages(range);
        let data = serde_bytes::ByteBuf::from(data);
        return Ok(Chunk { index, data, sha256: Sha256::default(), changed_pages: Some(bitmap.into()), base_ranges: None });
    }
    let len = (range.end - range.start) as usize;
    let data = match dump.kind {
        StateKind::StableMemory => pages::read_frozen(range.start, len),
        StateKind::Native => unreachable!("a library app's state is serde or stable memory"),
        StateKind::Serde if dump.from_upgrade_save => {
            if serde_state::upgrade_save().is_none_or(|save| save.generation != dump.frozen_generation) {
                return Err(BackupError::NoUpgradeSave { reason: "a later upgrade saved the state anew while it was dumped".into() });
            }
            serde_state::read_upgrade_save(range.start, len)
        }
        StateKind::Serde => {
            let mut buf = ReadBuffer::with_capacity(len);
            buf.read(&staging::staging(), range.start, len);
            buf.into_vec()
        }
    };
    let (data, base_ranges) = if dump.content_index { content_index::answer(index, range.start, data, dump.incremental) } else { (data, None) };
    let sha256 = if dump.chunk_hashes && base_ranges.is_none() { Sha256::of(&data) } else { Sha256::default() };
    Ok(Chunk { index, data: serde_bytes::ByteBuf::from(data), sha256, changed_pages: None, base_ranges })
}

/// Closes `key`'s dump at `now`; `base`: the vault stored it whole as that snapshot, so a
/// stable-memory image, or a serde one whose content was indexed chunk by chunk, is kept as the
/// base of its next incremental dump.
pub fn end(key: SessionKey, base: Option<u64>, now: u64) -> Result<(), BackupError> {
    let Some(dump) = session::dump(&key) else { return Ok(()) };
    let keeps = |snapshot| match dump.kind {
        StateKind::StableMemory => true,
        StateKind::Native => unreachable!("a library app's state is serde or stable memory"),
        StateKind::Serde => dump.content_index && content_index::keep_as_base(snapshot, manifest::chunk_count(dump.size, dump.chunk_size)),
    };
    match base.filter(|&snapshot| keeps(snapshot)) {
        Some(snapshot) => {
            let (vault, nonce, size, generation) = (key.vault, key.nonce, dump.size, dump.frozen_generation);
            session::end_dump_as_base(&key, Base { kind: dump.kind, vault, nonce, snapshot, size, generation, touched_at_nanos: now });
        }
        None => session::end_dump(&key),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use candid::Principal;
    use ic_stable_structures::Memory;

    use vault_api::ContentHash;

    use super::*;
    use crate::layout::Session;
    use crate::memory;

    fn key(nonce: Option<u64>, job: u64) -> SessionKey {
        SessionKey { vault: Principal::from_slice(&[9; 10]), nonce, job }
    }

    /// The `DumpBegin` of `key`, from a vault that hashes every chunk itself (`chunk_hashes`
    /// `Some(false)`) or one before BLAKE3 (`None`).
    fn args(key: SessionKey, chunk_hashes: Option<bool>) -> DumpBegin {
        DumpBegin { job: key.job, nonce: key.nonce, chunk_hashes, base: None, from_upgrade_save: None, content_index: None }
    }

    #[test]
    fn only_the_vault_instance_that_opened_a_dump_reads_and_ends_it() {
        memory::memory().grow(1);
        let opened = key(Some(7), 1);
        let manifest = begin(opened, &args(opened, Some(false)), 100, Some(3)).expect("a stable-memory dump opens");
        let reinstalled = key(Some(8), 1);
        let other_vault = SessionKey { vault: Principal::from_slice(&[8; 10]), ..opened };
        for other in [reinstalled, other_vault, key(None, 1), key(Some(7), 2)] {
            assert_eq!(chunk(other, 0), Err(BackupError::UnknownJob { job: other.job }), "{other:?}");
            assert_eq!(end(other, None, 0), Ok(()));
        }
        assert_eq!(chunk(opened, 0).map(|c| c.data.len() as u64), Ok(WASM_PAGE_SIZE));
        assert_eq!(manifest.state_layout, Some(3));
        assert_eq!(begin(opened, &args(opened, Some(false)), 200, Some(3)), Ok(manifest), "a repeated begin answers the same");
        assert!(matches!(store::header().session, Session::Dumping(OpenDump { touched_at_nanos: 200, taken_at_nanos: 100, .. })));
        end(opened, None, 0).unwrap();
        assert_eq!(chunk(opened, 0), Err(BackupError::UnknownJob { job: 1 }));
    }

    #[test]
    fn a_chunk_carries_its_sha256_only_for_a_vault_that_asks_for_it() {
        memory::memory().grow(1);
        memory::memory().write(0, b"the app's state");
        for (job, chunk_hashes) in [(1, Some(false)), (2, None), (3, Some(true))] {
            let opened = key(Some(7), job);
            let manifest = begin(opened, &args(opened, chunk_hashes), 100, None).expect("a stable-memory dump opens");
            assert_eq!(manifest.content_hashes, Some(vec![ContentHash::Sha256, ContentHash::Blake3]), "this library verifies both");
            let answered = chunk(opened, 0).expect("chunk 0");
            let expected = if chunk_hashes == Some(false) { Sha256::default() } else { Sha256::of(&answered.data) };
            assert_eq!(answered.sha256, expected, "{chunk_hashes:?}");
            assert_ne!(Sha256::of(&answered.data), Sha256::default());
            end(opened, None, 0).unwrap();
        }
    }

    fn incremental_args(key: SessionKey, base: Option<u64>) -> DumpBegin {
        DumpBegin { base, ..args(key, Some(false)) }
    }

    /// Page `page` of the app's memory filled with `byte`.
    fn fill_page(page: u64, byte: u8) {
        crate::pages::write_live(page * 4096, &[byte; 4096], || ());
    }

    #[test]
    fn a_dump_the_vault_named_its_base_makes_the_next_one_incremental() {
        memory::memory().grow(1);
        (0..16).for_each(|page| fill_page(page, 1));
        let first = key(Some(7), 1);
        let manifest = begin(first, &incremental_args(first, Some(9)), 100, None).expect("a dump opens");
        assert_eq!(manifest.base, None, "no base is held: a full dump");
        assert_eq!(chunk(first, 0).map(|c| c.changed_pages), Ok(None));
        end(first, Some(41), 110).expect("kept as snapshot 41's image");
        assert!(matches!(store::header().base, Some(Base { snapshot: 41, size: 65536, .. })));
        fill_page(3, 2);
        fill_page(5, 1);
        let second = key(Some(7), 2);
        let manifest = begin(second, &incremental_args(second, Some(41)), 200, None).expect("a dump opens");
        assert_eq!(manifest.base, Some(41));
        let answered = chunk(second, 0).expect("chunk 0");
        let bitmap = answered.changed_pages.expect("an incremental chunk").into_vec();
        assert_eq!((bitmap.as_slice(), answered.data.len()), (&[0b1000, 0][..], 4096), "page 3 only: page 5 has its bytes again");
        assert!(answered.data.iter().all(|&b| b == 2));
        end(second, None, 210).expect("closed without a new base");
        assert!(matches!(store::header().base, Some(Base { snapshot: 41, .. })), "the base stays");
        for (stranger, snapshot) in [(key(Some(8), 3), 41), (key(Some(7), 4), 40)] {
            let manifest = begin(stranger, &incremental_args(stranger, Some(snapshot)), 300, None).expect("a dump opens");
            assert_eq!(manifest.base, None, "another vault instance's base, or another snapshot: full");
            end(stranger, None, 310).unwrap();
        }
    }

    #[test]
    fn a_restore_a_change_of_vault_and_the_ttl_drop_the_base() {
        memory::memory().grow(1);
        let vault = Principal::from_slice(&[9; 10]);
        crate::set_vault(vault);
        let keep = |job: u64, now: u64| {
            let opened = key(Some(7), job);
            begin(opened, &incremental_args(opened, None), now, None).expect("a dump opens");
            end(opened, Some(job), now).expect("kept");
            assert!(store::header().base.is_some());
        };
        keep(1, 10);
        crate::set_vault(Principal::from_slice(&[8; 10]));
        assert_eq!(store::header().base, None, "a change of vault");
        crate::set_vault(vault);
        keep(2, 20);
        let ttl = vault_api::protocol::SESSION_TTL.as_nanos() as u64;
        assert!(!session::release_stale(20 + ttl));
        assert!(store::header().base.is_some(), "within the TTL");
        session::release_stale(21 + ttl);
        assert_eq!(store::header().base, None, "past the TTL");
        keep(3, 30);
        crate::restore::on_restore(|| ());
        let begin_restore = vault_api::protocol::RestoreBegin {
            job: 4,
            state_kind: StateKind::StableMemory,
            size: 65536,
            chunk_size: 65536,
            sha256: Sha256::default(),
            nonce: Some(7),
            content_hash: None,
            via_upgrade: None,
        };
        crate::restore::begin(key(Some(7), 4), begin_restore, 40).expect("a restore opens");
        assert_eq!(store::header().base, None, "a restore");
    }

    /// The image `answer` stands for over `base`: its ranges of the base, its bytes between.
    fn rebuilt(base: &[u8], answer: &Chunk) -> Vec<u8> {
        crate::content_index::tests::rebuild(base, &answer.data, answer.base_ranges.as_ref().expect("an incremental serde chunk"))
    }

    /// Opens `key`'s serde dump of `image`, staged as `begin` stages a serialization, with a
    /// content index and incremental if told; returns its chunks as answered.
    fn dump_staged(key: SessionKey, image: &[u8], incremental: bool) -> Vec<Chunk> {
        assert!(staging::reserve(image.len() as u64));
        staging::staging().write(0, image);
        let dump = OpenDump {
            key,
            kind: StateKind::Serde,
            size: image.len() as u64,
            chunk_size: CHUNK_SIZE,
            taken_at_nanos: 1,
            frozen_generation: 0,
            touched_at_nanos: 1,
            chunk_hashes: false,
            incremental,
            from_upgrade_save: false,
            content_index: true,
        };
        session::open_dump(|| Ok(dump)).expect("opened");
        content_index::clear_recorded();
        (0..manifest::chunk_count(image.len() as u64, CHUNK_SIZE)).map(|i| chunk(key, i).expect("a chunk")).collect()
    }

    #[test]
    fn a_serde_dump_with_a_content_index_is_the_base_of_the_next_which_answers_what_the_base_lacks() {
        let letters = |i: u64| {
            let mut x = i;
            (0..400)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (b'a' + (x >> 59) as u8 % 26) as char
                })
                .collect::<String>()
        };
        let notes: Vec<String> = (0..6000).map(letters).collect();
        let base = rmp_serde::to_vec_named(&notes).unwrap();
        let first = key(Some(7), 1);
        assert!(!builds_on(&first, StateKind::Serde, true, 41));
        let answers = dump_staged(first, &base, false);
        assert!(answers.len() >= 2);
        assert!(answers.iter().all(|a| a.base_ranges.is_none() && a.changed_pages.is_none()));
        assert!(answers.iter().flat_map(|a| a.data.iter().copied()).eq(base.iter().copied()));
        end(first, Some(41), 110).expect("kept as snapshot 41's image");
        assert!(matches!(store::header().base, Some(Base { kind: StateKind::Serde, snapshot: 41, generation: 0, .. })));
        let second = key(Some(7), 2);
        assert!(builds_on(&second, StateKind::Serde, true, 41));
        assert!(!builds_on(&second, StateKind::Serde, false, 41), "a dump without a content index");
        assert!(!builds_on(&second, StateKind::StableMemory, false, 41), "a stable-memory dump");
        assert!(!builds_on(&second, StateKind::Serde, true, 40), "another snapshot");
        assert!(!builds_on(&key(Some(8), 2), StateKind::Serde, true, 41), "another vault instance");

        let mut changed = notes.clone();
        changed[10] = "changed".into();
        changed.insert(4000, "a new note".into());
        let image = rmp_serde::to_vec_named(&changed).unwrap();
        let answers = dump_staged(second, &image, true);
        let rebuilt: Vec<u8> = answers.iter().flat_map(|a| rebuilt(&base, a)).collect();
        assert!(rebuilt == image, "the chunks rebuild the new serialization");
        let moved: usize = answers.iter().map(|a| a.data.len()).sum();
        // The pieces around the two changes, and the first and last of each chunk, whose cuts
        // restart at its start and whose bytes moved.
        assert!(moved < 16 * 1024, "{moved} bytes moved for two notes changed");
        end(second, None, 210).expect("closed without a new base");
        assert!(matches!(store::header().base, Some(Base { snapshot: 41, .. })), "the base stays");
        let third = key(Some(7), 3);
        dump_staged(third, &image, true);
        end(third, Some(42), 310).expect("kept as snapshot 42's image");
        assert!(matches!(store::header().base, Some(Base { kind: StateKind::Serde, snapshot: 42, .. })));
        assert!(builds_on(&key(Some(7), 4), StateKind::Serde, true, 42));
    }
}
