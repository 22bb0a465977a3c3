//! Configuration kinds, loading and validation.
//!
//! Files hold documents of the kinds in [`kinds`] (MetalLB's, under `ironlb.io/v1beta1`);
//! [`load`] reads them, remembering where each came from, and [`validate()`] checks the whole set
//! at once and builds the [`Config`] model, or reports every problem with its file, document,
//! object and field.

pub mod error;
pub mod go_duration;
pub mod kinds;
pub mod load;
pub mod model;
pub mod service;
pub mod validate;

pub use error::{ConfigError, ConfigErrors, FieldPath, Origin};
pub use load::{load_config, load_configs, Documents, Loaded, Sourced};
pub use model::{
    BfdProfile, BgpAdvertisement, Community, CommunityError, Config, InterfaceName,
    InterfaceNameError, L2Advertisement, Password, Peer, PeerAsn, Pool, PoolSelection, SecretRef,
};
pub use validate::validate;
