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
//! - [`report`]: JUnit, JSON, Markdown, HTML and the terminal summary.
//! - [`twin`] and [`live`]: the providers (embedded mesh; kind, existing, k3s).
//!
//! One static check on the reference install:
//!
//! ```
//! use meshconform::checks::{self, CheckId, Status};
//! use meshconform::subject::{self, Subject};
//!
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/single-sidecar-strict.yaml");
//! let scenario = meshconform::scenario::load(std::path::Path::new(path))?;
//! let rendered = subject::render(&Subject::default(), &scenario)?;
//! let outcome = checks::run_static(CheckId::MtlsInbound, &scenario, &rendered);
//! assert_eq!(outcome.status, Status::Pass, "{}", outcome.summary);
//! # Ok::<(), meshconform::Error>(())
//! ```
//!
//! A whole scenario, static and runtime, on the twin:
//!
//! ```
//! use meshconform::runner::{self, Scope};
//! use meshconform::subject::Subject;
//! use meshconform::twin::Twin;
//!
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/multi-no-fencing.yaml");
//! let scenario = meshconform::scenario::load(std::path::Path::new(path))?;
//! let result = runner::run_scenario(&scenario, &Subject::default(), Some(&Twin::new()), Scope::All)?;
//! // A negative control: its failures are expected, so every outcome matches.
//! assert!(result.ok());
//! # Ok::<(), meshconform::Error>(())
//! ```
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
