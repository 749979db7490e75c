//! Signet: a Kubernetes-native private CA whose keys never leave AWS KMS.
//!
//! Module arrows point one way: `api` (CRD types, pure) ← `pki` (X.509/CRL
//! building, pure, takes a signer) ← `kms` (Signer trait + AWS KMS);
//! `store` (SQLite mirror + audit); `controller` (one reconciler per kind);
//! `http` (metrics, health, CRL).
#![forbid(unsafe_code)]

pub mod api;
pub mod controller;
pub mod http;
pub mod kms;
pub mod logging;
pub mod metrics;
pub mod pki;
pub mod store;
