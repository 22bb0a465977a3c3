//! Kubernetes label selectors, parsed once and matched against label sets.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

mod set;

pub use set::LabelSet;

/// A set of labels, as on any Kubernetes object.
pub type Labels = BTreeMap<String, String>;

/// Anything a label's value can be looked up in: a map as read from an object, or a packed set
/// as an allocation keeps it.
pub trait LabelLookup {
    /// The value of the label `key`, if present.
    fn label(&self, key: &str) -> Option<&str>;
}

impl LabelLookup for Labels {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl LabelLookup for LabelSet {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key)
    }
}

/// How a requirement relates a label to its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Operator {
    /// The label is present and its value is one of the values.
    In,
    /// The label is absent, or its value is none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// One requirement of a selector.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The relation.
    pub operator: Operator,
    /// The values for In and NotIn; empty for Exists and DoesNotExist.
    pub values: BTreeSet<String>,
}

impl Requirement {
    fn matches<L: LabelLookup + ?Sized>(&self, labels: &L) -> bool {
        let value = labels.label(&self.key);
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.contains(v)),
            Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

/// A label selector: every requirement must hold. The empty selector matches everything,
/// as in Kubernetes.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

/// Why a selector could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The operator is not one Kubernetes knows.
    #[error("unknown operator {0:?}: expected In, NotIn, Exists or DoesNotExist")]
    UnknownOperator(String),
    /// In and NotIn need values.
    #[error("operator {0:?} needs at least one value")]
    MissingValues(&'static str),
    /// Exists and DoesNotExist take no values.
    #[error("operator {0:?} takes no values")]
    UnexpectedValues(&'static str),
    /// A key is empty.
    #[error("label key must not be empty")]
    EmptyKey,
}

impl Selector {
    /// The selector that matches every label set.
    pub fn everything() -> Self {
        Self::default()
    }

    /// A selector from `matchLabels` and `matchExpressions` given as (key, operator, values).
    pub fn new<'a>(
        match_labels: impl IntoIterator<Item = (&'a str, &'a str)>,
        match_expressions: impl IntoIterator<Item = (&'a str, &'a str, Vec<String>)>,
    ) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (key, value) in match_labels {
            if key.is_empty() {
                return Err(SelectorError::EmptyKey);
            }
            requirements.push(Requirement {
                key: key.to_owned(),
                operator: Operator::In,
                values: BTreeSet::from([value.to_owned()]),
            });
        }
        for (key, op, values) in match_expressions {
            if key.is_empty() {
                return Err(SelectorError::EmptyKey);
            }
            let (operator, name) = match op {
                "In" => (Operator::In, "In"),
                "NotIn" => (Operator::NotIn, "NotIn"),
                "Exists" => (Operator::Exists, "Exists"),
                "DoesNotExist" => (Operator::DoesNotExist, "DoesNotExist"),
                other => return Err(SelectorError::UnknownOperator(other.to_owned())),
            };
            let needs_values = matches!(operator, Operator::In | Operator::NotIn);
            if needs_values && values.is_empty() {
                return Err(SelectorError::MissingValues(name));
            }
            if !needs_values && !values.is_empty() {
                return Err(SelectorError::UnexpectedValues(name));
            }
            requirements.push(Requirement {
                key: key.to_owned(),
                operator,
                values: values.into_iter().collect(),
            });
        }
        // Sorted so two selectors that say the same thing compare (and serialize) equal.
        requirements.sort();
        requirements.dedup();
        Ok(Self { requirements })
    }

    /// Whether every requirement holds for these labels.
    pub fn matches<L: LabelLookup + ?Sized>(&self, labels: &L) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether this is the empty selector.
    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.requirements.is_empty() {
            return f.write_str("<everything>");
        }
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let values = || r.values.iter().cloned().collect::<Vec<_>>().join(",");
            match r.operator {
                Operator::In if r.values.len() == 1 => write!(f, "{}={}", r.key, values())?,
                Operator::In => write!(f, "{} in ({})", r.key, values())?,
                Operator::NotIn => write!(f, "{} notin ({})", r.key, values())?,
                Operator::Exists => write!(f, "{}", r.key)?,
                Operator::DoesNotExist => write!(f, "!{}", r.key)?,
            }
        }
        Ok(())
    }
}

/// A label map from pairs, for tests.
#[cfg(test)]
pub(crate) fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_match_as_kubernetes_does() {
        let s = Selector::new(
            [("team", "web")],
            [
                ("env", "In", vec!["prod".into(), "stage".into()]),
                ("legacy", "DoesNotExist", vec![]),
                ("tier", "NotIn", vec!["db".into()]),
            ],
        )
        .unwrap();
        assert!(s.matches(&labels(&[("team", "web"), ("env", "prod")])));
        assert!(s.matches(&labels(&[
            ("team", "web"),
            ("env", "stage"),
            ("tier", "fe")
        ])));
        assert!(!s.matches(&labels(&[("team", "web"), ("env", "dev")])));
        assert!(!s.matches(&labels(&[("team", "web"), ("env", "prod"), ("legacy", "")])));
        assert!(!s.matches(&labels(&[("team", "web"), ("env", "prod"), ("tier", "db")])));
        assert!(!s.matches(&labels(&[("env", "prod")])));
        assert!(Selector::everything().matches(&Labels::new()));
        assert_eq!(
            s.to_string(),
            "env in (prod,stage),!legacy,team=web,tier notin (db)"
        );
    }

    #[test]
    fn bad_selectors_are_refused() {
        assert_eq!(
            Selector::new([], [("a", "Has", vec![])]),
            Err(SelectorError::UnknownOperator("Has".into()))
        );
        assert_eq!(
            Selector::new([], [("a", "In", vec![])]),
            Err(SelectorError::MissingValues("In"))
        );
        assert_eq!(
            Selector::new([], [("a", "Exists", vec!["x".into()])]),
            Err(SelectorError::UnexpectedValues("Exists"))
        );
    }
}
