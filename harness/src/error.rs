//! Errors a user can act on: every one names where the problem is and what to do.

use std::fmt;
use std::path::PathBuf;

/// A problem in a file the user wrote (a scenario, a values file, a chart's output).
///
/// Rendered as `file:line:column: field `a.b`: message (hint)` so that editors and CI
/// annotations can jump to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// The file that holds the problem.
    pub file: PathBuf,
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
    /// Dotted path of the offending field (`clusters[1].istio.mode`), or `(document)`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl InputError {
    /// An error at a known place.
    pub fn at(
        file: impl Into<PathBuf>,
        line: u64,
        column: u64,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            line: (line > 0).then_some(line),
            column: (column > 0).then_some(column),
            field: field.into(),
            message: message.into(),
        }
    }

    /// An error about a whole file (it cannot be read, it is empty, ...).
    pub fn file(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            line: None,
            column: None,
            field: "(document)".into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": field `{}`: {}", self.field, self.message)
    }
}

impl std::error::Error for InputError {}

/// Every error the harness reports to its caller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A user-written file is wrong.
    #[error("{0}")]
    Input(#[from] InputError),
    /// Several user-written files are wrong; all are reported at once.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Inputs(Vec<InputError>),
    /// A tool the harness needs is missing or failed (helm, kind, docker, ...).
    #[error("{tool}: {message}")]
    Tool {
        /// The tool's name.
        tool: String,
        /// What happened, including the tool's own message, and how to fix it.
        message: String,
    },
    /// A command-line argument is wrong.
    #[error("{0}")]
    Usage(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A provider could not bring up or probe a mesh.
    #[error("provider {provider}: {message}")]
    Provider {
        /// The provider's name (`twin`, `kind`, `existing`).
        provider: String,
        /// What happened and how to fix it.
        message: String,
    },
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// True when the error is the user's input or environment (exit code 2), as
    /// opposed to a conformance failure.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Error::Provider { .. })
    }
}

/// The harness's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
