//! The subcommands of the `ironlb` binary.

pub mod certs;
pub mod check;
pub mod ctl;
#[cfg(feature = "demo")]
pub mod demo;
pub mod migrate;
pub mod serve;
pub mod speaker;
pub mod standalone;
pub mod table;

/// How a command prints its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Human tables.
    Table,
    /// JSON, as the admin API answers.
    Json,
}
