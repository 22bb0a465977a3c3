//! A label set kept for a long time (in every allocation, and in the views built from them): the
//! pairs packed into one shared buffer.
//!
//! A `BTreeMap<String, String>` costs a B-tree node of about 540 bytes however few labels it
//! holds, plus two heap blocks per pair; the allocator keeps three such sets per Service, and the
//! leader's view a copy of one per address. Packed, a set is one block the size of its text, and
//! a copy shares it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Labels;
use crate::intern::Interner;

/// The label sets made by [`LabelSet::interned`], each held once.
static SHARED_SETS: LazyLock<Interner<[u8]>> = LazyLock::new(Interner::new);

/// Labels packed into one shared, immutable buffer, sorted by key: cheap to hold and to copy.
///
/// The buffer is a sequence of (key length, key, value length, value), lengths as 4-byte
/// little-endian integers. It is built only from `&str` pairs of a map (so keys are unique and
/// sorted, and every piece is UTF-8), which makes the bytes canonical: two sets are equal
/// exactly when their bytes are.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelSet(Option<Arc<[u8]>>);

impl LabelSet {
    /// The empty set.
    pub const fn new() -> Self {
        Self(None)
    }

    /// Whether the set holds no label.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// How many labels the set holds.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// The value of a label, if the set has it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The labels in key order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            rest: self.0.as_deref().unwrap_or_default(),
        }
    }

    /// The labels as a map.
    pub fn to_labels(&self) -> Labels {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// The set of these labels, sharing its buffer with every equal set made this way: for
    /// labels many objects carry alike (a namespace's, in each of its Services' requests).
    /// Labels unique to one object gain nothing from it, so the others are packed plainly.
    pub fn interned(labels: &Labels) -> Self {
        let Self(Some(packed)) = Self::from(labels) else {
            return Self::new();
        };
        Self(Some(SHARED_SETS.intern(packed)))
    }

    /// Reads a set as [`Deserialize`] does, then shares it as [`LabelSet::interned`] does.
    pub fn deserialize_interned<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Self, D::Error> {
        BTreeMap::<String, String>::deserialize(deserializer).map(|m| Self::interned(&m))
    }

    fn pack<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Self {
        let mut buf = Vec::new();
        for (k, v) in pairs {
            for piece in [k, v] {
                // A label longer than 4 GiB cannot come through any API this process serves
                // (the largest request body is a few MiB), so the length always fits.
                let len = u32::try_from(piece.len()).unwrap_or(u32::MAX);
                buf.extend_from_slice(&len.to_le_bytes());
                buf.extend_from_slice(piece.as_bytes());
            }
        }
        Self((!buf.is_empty()).then(|| Arc::from(buf)))
    }
}

/// The labels of a [`LabelSet`], in key order.
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    rest: &'a [u8],
}

impl<'a> Iter<'a> {
    fn piece(&mut self) -> Option<&'a str> {
        let (len, rest) = self.rest.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
        let (piece, rest) = rest.split_at_checked(len)?;
        self.rest = rest;
        // `pack` writes only whole `&str`s, so this never fails; if it did, the set would end
        // early rather than panic.
        std::str::from_utf8(piece).ok()
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let key = self.piece()?;
        let value = self.piece()?;
        Some((key, value))
    }
}

impl From<&Labels> for LabelSet {
    fn from(labels: &Labels) -> Self {
        Self::pack(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

impl From<Labels> for LabelSet {
    fn from(labels: Labels) -> Self {
        Self::from(&labels)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for LabelSet {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let map: Labels = iter
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self::from(&map)
    }
}

impl fmt::Debug for LabelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Serialized as the map it stands for: the same bytes and JSON as a `BTreeMap<String, String>`.
impl Serialize for LabelSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Bincode needs the length first, and the iterator cannot tell it without a pass.
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for LabelSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::<String, String>::deserialize(deserializer).map(|m| Self::from(&m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::labels as map;

    #[test]
    fn a_set_holds_what_its_map_held_in_key_order() {
        let m = map(&[
            ("tier", "web"),
            ("app.kubernetes.io/name", "shop"),
            ("", ""),
        ]);
        let s = LabelSet::from(&m);
        assert_eq!(s.len(), 3);
        assert_eq!(s.get("tier"), Some("web"));
        assert_eq!(s.get(""), Some(""));
        assert_eq!(s.get("app"), None);
        assert_eq!(s.to_labels(), m);
        let keys: Vec<&str> = s.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["", "app.kubernetes.io/name", "tier"]);
        assert!(LabelSet::new().is_empty());
        assert!(LabelSet::from(&Labels::new()).is_empty());
        assert_eq!(LabelSet::from(&Labels::new()), LabelSet::new());
    }

    #[test]
    fn sets_are_equal_exactly_when_their_maps_are() {
        let a = LabelSet::from_iter([("a", "1"), ("b", "2")]);
        let b = LabelSet::from_iter([("b", "2"), ("a", "1")]);
        assert_eq!(a, b);
        assert_ne!(a, LabelSet::from_iter([("a", "1"), ("b", "3")]));
        // A value that spells another pair's bytes is still one value.
        assert_ne!(
            LabelSet::from_iter([("a", "1")]),
            LabelSet::from_iter([("a", "1\u{1}\0\0\0b")])
        );
    }

    #[test]
    fn interned_sets_share_one_buffer() {
        let m = map(&[("kubernetes.io/metadata.name", "shop")]);
        let (a, b) = (LabelSet::interned(&m), LabelSet::interned(&m.clone()));
        let (Some(x), Some(y)) = (&a.0, &b.0) else {
            panic!("empty sets")
        };
        assert!(Arc::ptr_eq(x, y));
        assert_eq!(a, LabelSet::from(&m));
        assert!(LabelSet::interned(&Labels::new()).is_empty());
        let read: LabelSet = LabelSet::deserialize_interned(
            &mut serde_json::Deserializer::from_str(r#"{"kubernetes.io/metadata.name":"shop"}"#),
        )
        .unwrap();
        assert!(read.0.as_ref().is_some_and(|r| Arc::ptr_eq(r, x)));
    }

    #[test]
    fn a_set_serializes_as_its_map_does() {
        let m = map(&[("app", "web"), ("tier", "front")]);
        let s = LabelSet::from(&m);
        let cfg = bincode::config::standard();
        assert_eq!(
            bincode::serde::encode_to_vec(&s, cfg).unwrap(),
            bincode::serde::encode_to_vec(&m, cfg).unwrap()
        );
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            serde_json::to_string(&m).unwrap()
        );
        let back: LabelSet = serde_json::from_str(r#"{"tier":"front","app":"web"}"#).unwrap();
        assert_eq!(back, s);
        let empty = LabelSet::new();
        assert_eq!(serde_json::to_string(&empty).unwrap(), "{}");
    }
}
