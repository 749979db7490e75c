//! Signet: a Kubernetes-native private CA whose keys never leave AWS KMS.
//!
//! Module arrows point one way:
//!
//! * `api` — CRD types, pure; `clock` — the injected clock; `fence` — whether
//!   this process may write now (the leader lease, by its own clock);
//! * `kms` — the `Signer` and `KeyManager` traits, AWS KMS, in-memory keys;
//! * `pki` — X.509/CRL building and parsing, pure, takes a signer and `now`
//!   (uses `api`, `kms`);
//! * `store` — SQLite mirror + audit trail;
//! * `published` — what the controllers signed, for the HTTP side;
//!   `metrics` — Prometheus metrics (uses `published`, `store`, and
//!   implements `kms`'s observer of KMS calls);
//! * `controller` — one driver, one pipeline per kind (uses all of the above);
//! * `http` — admin + PKI endpoints (uses `published`, `metrics`, `store`;
//!   never `controller`);
//! * `run` — `signet run`: the one place that wires them together.
#![forbid(unsafe_code)]

pub mod api;
pub mod clock;
pub mod controller;
pub mod fence;
pub mod http;
pub mod kms;
pub mod logging;
pub mod metrics;
pub mod pki;
pub mod published;
pub mod run;
pub mod store;
