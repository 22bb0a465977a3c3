use super::map_delta;
use std::collections::BTreeMap;

#[test]
fn the_delta_adds_changes_and_removes_what_differs() {
    let old: BTreeMap<u8, &str> = [(1, "a"), (2, "b"), (4, "d"), (6, "f")].into();
    let new: BTreeMap<u8, &str> = [(2, "b"), (3, "c"), (4, "D"), (7, "g")].into();
    let (up, gone) = map_delta(old.iter(), new.iter());
    assert_eq!(up, vec![(3, "c"), (4, "D"), (7, "g")]);
    assert_eq!(gone, vec![1, 6]);
    assert_eq!(map_delta(new.iter(), new.iter()), (vec![], vec![]));
    // Applying the delta to the old map gives the new one.
    let mut applied = old.clone();
    for k in gone {
        applied.remove(&k);
    }
    applied.extend(up);
    assert_eq!(applied, new);
}
