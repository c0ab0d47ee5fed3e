//! meshconform: holds a Kubernetes cost agent (the CloudZero Agent and its Helm chart)
//! to the behaviour it must have inside an Istio mesh.
//!
//! Data flows one way:
//!
//! ```text
//! scenario -> subject -> manifests -> checks -> outcomes -> reports
//!                            |           ^
//!                            v           |
//!                  provider (twin | kind | existing)
//! ```
//!
//! - [`scenario`]: the matrix, one YAML file per scenario.
//! - [`subject`]: the reference install or a chart, rendered per cluster.
//! - [`manifests`]: typed objects; [`roles`] finds the webhook, aggregator, backfill.
//! - [`checks`]: static checks on manifests, runtime checks through a [`provider`].
//! - [`runner`]: runs scenarios and compares outcomes with expectations.
//! - [`report`]: JUnit, JSON, Markdown and the terminal summary.
#![deny(missing_docs)]

pub mod certs;
pub mod checks;
pub mod cli;
pub mod error;
pub mod live;
pub mod manifests;
pub mod mutations;
pub mod provider;
pub mod report;
pub mod roles;
pub mod runner;
pub mod scenario;
pub mod subject;
pub mod tools;
pub mod twin;

pub use error::{Error, InputError, Result};
