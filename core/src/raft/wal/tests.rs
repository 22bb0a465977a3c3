use openraft::testing::log_id;
use openraft::EntryPayload;

use super::*;
use crate::ipam::AllocationRequest;
use crate::raft::Command;

fn entry(index: u64) -> Entry {
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(Command::Allocate {
            request: AllocationRequest::new(format!("ns/svc-{index}").parse().unwrap(), vec![]),
        }),
    }
}

fn entries(range: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    range.map(entry).collect()
}

/// The indexes read back: from the file, then from the entries kept decoded.
fn indexes(wal: &Wal, lo: u64, hi: u64) -> Vec<u64> {
    let (runs, cached) = wal.plan_read(lo, hi);
    let mut entries = read(&runs).unwrap();
    entries.extend(cached);
    entries.iter().map(|e| e.log_id.index).collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    files.sort();
    files
}

fn sync(wal: &Wal) {
    wal.active_file().sync_data().unwrap();
}

#[test]
fn everything_written_comes_back_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let vote = Vote::new(3, 2);
    {
        let mut wal = Wal::open(dir.path()).unwrap();
        assert_eq!(wal.append(entries(0..=9)).unwrap(), Some(log_id(1, 1, 9)));
        wal.save_vote(&vote).unwrap();
        wal.save_committed(Some(log_id(1, 1, 7))).unwrap();
        assert_eq!(indexes(&wal, 3, 5), vec![3, 4, 5]);
        wal.purge(log_id(1, 1, 1)).unwrap();
        assert_eq!(indexes(&wal, 0, 0), Vec::<u64>::new());
        assert_eq!(indexes(&wal, 0, 2), vec![2]);
        assert_eq!(indexes(&wal, 9, 20), vec![9]);
        assert_eq!(indexes(&wal, 10, 20), Vec::<u64>::new());
        sync(&wal);
    }
    let wal = Wal::open(dir.path()).unwrap();
    assert_eq!(wal.vote(), Some(vote));
    assert_eq!(wal.committed(), Some(log_id(1, 1, 7)));
    assert_eq!(wal.last_log_id(), Some(log_id(1, 1, 9)));
    assert_eq!(indexes(&wal, 0, u64::MAX), (2..=9).collect::<Vec<_>>());
    let read_back = read(&wal.locate(4, 4)).unwrap();
    assert_eq!(
        serde_json::to_value(&read_back[0]).unwrap(),
        serde_json::to_value(entry(4)).unwrap()
    );
}

#[test]
fn a_write_cut_short_at_the_end_is_cut_off_and_the_log_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let end = {
        let mut wal = Wal::open(dir.path()).unwrap();
        wal.append(entries(0..=4)).unwrap();
        wal.append(entries(5..=5)).unwrap();
        sync(&wal);
        wal.active().len
    };
    let file = segment_files(dir.path()).pop().unwrap();
    assert!(
        fs::metadata(&file).unwrap().len() > end,
        "zeros are written ahead"
    );
    // Every cut inside the last record loses that record and nothing before it.
    for cut in [1, 9, 30] {
        let copy = tempfile::tempdir().unwrap();
        let target = copy.path().join(file.file_name().unwrap());
        fs::copy(&file, &target).unwrap();
        let f = OpenOptions::new().write(true).open(&target).unwrap();
        f.set_len(end - cut).unwrap();
        drop(f);
        let mut wal = Wal::open(copy.path()).unwrap();
        assert_eq!(wal.last_log_id(), Some(log_id(1, 1, 4)), "cut {cut}");
        wal.append(entries(5..=6)).unwrap();
        drop(wal);
        let wal = Wal::open(copy.path()).unwrap();
        assert_eq!(indexes(&wal, 0, 10), (0..=6).collect::<Vec<_>>());
    }
    // A record half overwritten by garbage, then zeros, is cut off the same way.
    let f = OpenOptions::new().write(true).open(&file).unwrap();
    f.write_all_at(b"garbage", end - 20).unwrap();
    drop(f);
    let wal = Wal::open(dir.path()).unwrap();
    assert_eq!(wal.last_log_id(), Some(log_id(1, 1, 4)));
    assert!(fs::metadata(&file).unwrap().len() < end);
}

#[test]
fn damage_in_an_older_segment_is_refused_naming_the_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut wal = Wal::open_with(dir.path(), 1).unwrap();
        for i in 0..4 {
            wal.append(entries(i..=i)).unwrap();
        }
        sync(&wal);
    }
    let first = segment_files(dir.path()).remove(0);
    let mut bytes = fs::read(&first).unwrap();
    // Inside the first record after the header.
    bytes[record::MAGIC.len() + record::HEADER + 2] ^= 0xFF;
    fs::write(&first, bytes).unwrap();
    let err = Wal::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains(&first.display().to_string()), "{err}");
    assert!(err.contains("checksum"), "{err}");
}

#[test]
fn full_segments_roll_over_and_go_once_purged() {
    let dir = tempfile::tempdir().unwrap();
    let vote = Vote::new(2, 1);
    {
        let mut wal = Wal::open_with(dir.path(), 400).unwrap();
        wal.save_vote(&vote).unwrap();
        for i in 0..20 {
            wal.append(entries(i..=i)).unwrap();
        }
        assert!(segment_files(dir.path()).len() > 3);
        assert_eq!(indexes(&wal, 0, 19), (0..=19).collect::<Vec<_>>());
        wal.purge(log_id(1, 1, 12)).unwrap();
        sync(&wal);
        assert!(wal.remove_purged_segments().unwrap() > 0);
        assert_eq!(indexes(&wal, 0, 19), (13..=19).collect::<Vec<_>>());
    }
    let wal = Wal::open_with(dir.path(), 400).unwrap();
    // The vote lived in a deleted segment; the next one's checkpoint carried it.
    assert_eq!(wal.vote(), Some(vote));
    assert_eq!(wal.last_purged(), Some(log_id(1, 1, 12)));
    assert_eq!(indexes(&wal, 0, 100), (13..=19).collect::<Vec<_>>());
}

#[test]
fn a_truncation_and_the_entries_that_replace_it_replay_in_order() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut wal = Wal::open_with(dir.path(), 300).unwrap();
        wal.append(entries(0..=9)).unwrap();
        wal.truncate(6).unwrap();
        let replacement = (6..=8).map(|i| Entry {
            log_id: log_id(2, 2, i),
            payload: EntryPayload::Blank,
        });
        wal.append(replacement).unwrap();
        sync(&wal);
    }
    let wal = Wal::open_with(dir.path(), 300).unwrap();
    assert_eq!(wal.last_log_id(), Some(log_id(2, 2, 8)));
    let read_back = read(&wal.locate(5, 9)).unwrap();
    let ids: Vec<_> = read_back.iter().map(|e| e.log_id).collect();
    assert_eq!(
        ids,
        vec![
            log_id(1, 1, 5),
            log_id(2, 2, 6),
            log_id(2, 2, 7),
            log_id(2, 2, 8)
        ]
    );
}

#[test]
fn a_purge_past_the_last_entry_is_the_last_log_id_after_a_reopen() {
    // A follower that installs a snapshot newer than its log purges past its last entry.
    let dir = tempfile::tempdir().unwrap();
    {
        let mut wal = Wal::open(dir.path()).unwrap();
        wal.append(entries(0..=3)).unwrap();
        wal.purge(log_id(3, 1, 50)).unwrap();
        sync(&wal);
        wal.remove_purged_segments().unwrap();
    }
    let mut wal = Wal::open(dir.path()).unwrap();
    assert_eq!(wal.last_log_id(), Some(log_id(3, 1, 50)));
    assert!(wal.locate(0, 100).is_empty());
    wal.append(entries(51..=52)).unwrap();
    assert!(matches!(
        wal.append(entries(60..=60)),
        Err(WalError::Gap {
            after: 52,
            found: 60
        })
    ));
}

#[test]
fn a_second_process_cannot_open_a_log_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let _wal = Wal::open(dir.path()).unwrap();
    // flock locks belong to the open file description, so a second open in this process
    // conflicts just as another process would.
    let err = Wal::open(dir.path()).unwrap_err();
    assert!(matches!(err, WalError::Locked { .. }), "{err}");
}

#[test]
fn a_sled_log_of_an_older_release_is_imported_once_and_removed() {
    let root = tempfile::tempdir().unwrap();
    let sled_dir = root.path().join("log");
    let vote = Vote::new(4, 3);
    {
        let db = sled::open(&sled_dir).unwrap();
        let tree = db.open_tree("raft").unwrap();
        for e in entries(5..=9) {
            let mut key = vec![b'l'];
            key.extend_from_slice(&e.log_id.index.to_be_bytes());
            tree.insert(key, codec::encode(&e).unwrap()).unwrap();
        }
        tree.insert("m/vote", codec::encode(&vote).unwrap())
            .unwrap();
        tree.insert(
            "m/committed",
            codec::encode(&Some(log_id(1, 1, 8))).unwrap(),
        )
        .unwrap();
        tree.insert("m/last_purged", codec::encode(&log_id(1, 1, 4)).unwrap())
            .unwrap();
        db.flush().unwrap();
    }
    let wal_dir = root.path().join("wal");
    assert_eq!(sled_import::import(&sled_dir, &wal_dir).unwrap(), Some(5));
    assert!(!sled_dir.exists());
    assert_eq!(sled_import::import(&sled_dir, &wal_dir).unwrap(), None);
    let wal = Wal::open(&wal_dir).unwrap();
    assert_eq!(wal.vote(), Some(vote));
    assert_eq!(wal.committed(), Some(log_id(1, 1, 8)));
    assert_eq!(wal.last_purged(), Some(log_id(1, 1, 4)));
    assert_eq!(indexes(&wal, 0, 100), (5..=9).collect::<Vec<_>>());
}

#[test]
fn reads_span_the_file_and_the_entries_kept_decoded_through_truncations_and_purges() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path()).unwrap();
    // More than RECENT_BYTES, so the oldest are read from the file.
    for i in 0..12_000 {
        wal.append(entries(i..=i)).unwrap();
    }
    let (runs, cached) = wal.plan_read(0, 11_999);
    assert!(!runs.is_empty() && !cached.is_empty());
    assert!(wal.recent_bytes <= RECENT_BYTES);
    assert_eq!(indexes(&wal, 0, 11_999), (0..12_000).collect::<Vec<_>>());
    wal.truncate(11_990).unwrap();
    wal.append((11_990..=11_995).map(|i| Entry {
        log_id: log_id(2, 1, i),
        payload: EntryPayload::Blank,
    }))
    .unwrap();
    let tail = {
        let (runs, cached) = wal.plan_read(11_985, 20_000);
        let mut e = read(&runs).unwrap();
        e.extend(cached);
        e.iter().map(|e| e.log_id).collect::<Vec<_>>()
    };
    let expected: Vec<_> = (11_985..11_990)
        .map(|i| log_id(1, 1, i))
        .chain((11_990..=11_995).map(|i| log_id(2, 1, i)))
        .collect();
    assert_eq!(tail, expected);
    wal.purge(log_id(2, 1, 11_993)).unwrap();
    assert_eq!(indexes(&wal, 0, 20_000), vec![11_994, 11_995]);
}
