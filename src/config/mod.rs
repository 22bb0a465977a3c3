//! Configuration kinds, loading and validation.
