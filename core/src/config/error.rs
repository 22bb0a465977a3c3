//! Configuration errors that say where the problem is: file, document, object and field.

use std::fmt;

/// Where a loaded object came from: a file (or another named source) and a document in it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    /// The file path as given when loading, or the name passed to [`Documents::from_str`].
    ///
    /// [`Documents::from_str`]: super::Documents::from_str
    pub file: String,
    /// The document's 1-based position in that file.
    pub document: usize,
}

impl Origin {
    /// The origin of document `document` (1-based) of `file`.
    pub fn new(file: impl Into<String>, document: usize) -> Self {
        Self {
            file: file.into(),
            document,
        }
    }

    /// An object read from the Kubernetes API, named `namespace/name` (document 0: no file).
    pub fn cluster(object: impl Into<String>) -> Self {
        Self {
            file: object.into(),
            document: 0,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.document == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{} (document {})", self.file, self.document)
        }
    }
}

/// One problem with the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The document the object came from; `None` for problems with no document (an unreadable
    /// file, say).
    pub origin: Option<Origin>,
    /// The object's kind (`IPAddressPool`), or empty when the document's kind is unknown.
    pub kind: String,
    /// The object's `metadata.name`, or empty when it has none.
    pub name: String,
    /// The field at fault (`spec.addresses[1]`), or empty when the whole object is.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// An error about the field `path` of an object.
    pub fn new(
        origin: Option<Origin>,
        kind: impl Into<String>,
        name: impl Into<String>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            origin,
            kind: kind.into(),
            name: name.into(),
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(origin) = &self.origin {
            write!(f, "{origin}: ")?;
        }
        match (self.kind.is_empty(), self.name.is_empty()) {
            (false, false) => write!(f, "{}/{}: ", self.kind, self.name)?,
            (false, true) => write!(f, "{}: ", self.kind)?,
            // Without a kind, a bare name would be ambiguous; the message says what it needs.
            (true, _) => {}
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration, in the order of the documents they concern.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<Vec<ConfigError>> for ConfigErrors {
    fn from(errors: Vec<ConfigError>) -> Self {
        Self(errors)
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// A field path in Kubernetes' notation: `spec.addresses[1]`,
/// `spec.nodeSelectors[0].matchLabels["kubernetes.io/hostname"]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldPath(String);

impl FieldPath {
    /// A path starting at a top-level field (`spec`, `metadata`).
    pub fn root(field: &str) -> Self {
        Self(field.to_owned())
    }

    /// The path of a field of this one.
    pub fn field(&self, field: &str) -> Self {
        if self.0.is_empty() {
            return Self::root(field);
        }
        Self(format!("{}.{field}", self.0))
    }

    /// The path of an element of this list.
    pub fn index(&self, index: usize) -> Self {
        Self(format!("{}[{index}]", self.0))
    }

    /// The path of an entry of this map (quoted, since keys may hold dots and slashes).
    pub fn key(&self, key: &str) -> Self {
        Self(format!("{}[{key:?}]", self.0))
    }

    /// The path as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<FieldPath> for String {
    fn from(p: FieldPath) -> String {
        p.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_display_origin_object_path_and_message() {
        let e = ConfigError::new(
            Some(Origin::new("pools.yaml", 2)),
            "IPAddressPool",
            "public",
            FieldPath::root("spec").field("addresses").index(1),
            "\"192.0.2.10-192.0.2.1\": range start is after its end",
        );
        assert_eq!(
            e.to_string(),
            "pools.yaml (document 2): IPAddressPool/public: spec.addresses[1]: \
             \"192.0.2.10-192.0.2.1\": range start is after its end"
        );
        let e = ConfigError::new(None, "BGPPeer", "r1", "", "something is wrong");
        assert_eq!(e.to_string(), "BGPPeer/r1: something is wrong");
        let e = ConfigError::new(None, "BGPPeer", "", "metadata.name", "is required");
        assert_eq!(e.to_string(), "BGPPeer: metadata.name: is required");
        let e = ConfigError::new(Some(Origin::new("a.yaml", 1)), "", "", "", "bad YAML");
        assert_eq!(e.to_string(), "a.yaml (document 1): bad YAML");
    }

    #[test]
    fn error_lists_print_one_per_line() {
        let errors = ConfigErrors(vec![
            ConfigError::new(None, "Community", "c", "", "one"),
            ConfigError::new(None, "Community", "c", "", "two"),
        ]);
        assert_eq!(errors.to_string(), "Community/c: one\nCommunity/c: two");
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn field_paths_use_kubernetes_notation() {
        let p = FieldPath::root("spec")
            .field("serviceAllocation")
            .field("namespaceSelectors")
            .index(0)
            .field("matchExpressions")
            .index(2)
            .field("operator");
        assert_eq!(
            p.as_str(),
            "spec.serviceAllocation.namespaceSelectors[0].matchExpressions[2].operator"
        );
        let p = FieldPath::default()
            .field("spec")
            .field("nodeSelectors")
            .index(0);
        let p = p.field("matchLabels").key("kubernetes.io/hostname");
        assert_eq!(
            p.to_string(),
            "spec.nodeSelectors[0].matchLabels[\"kubernetes.io/hostname\"]"
        );
    }
}
