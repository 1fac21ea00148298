//! Error reporting with SQLSTATE, DETAIL and HINT (DESIGN.md section 2).
//!
//! Every user-reachable failure goes through [`PgaError::raise`], which never returns; a Rust
//! panic would surface as `XX000`, which the contract forbids.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

pub use pgrx::PgSqlErrorCode as Code;

/// `P0001`: what PL/pgSQL's `RAISE EXCEPTION` gives, so applications and PostgREST keep working.
pub const RULE_VIOLATION: Code = PgSqlErrorCode::ERRCODE_RAISE_EXCEPTION;
/// `22023`
pub const INVALID_PARAMETER: Code = PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE;
/// `22004`
pub const NULL_NOT_ALLOWED: Code = PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED;
/// `42501`
pub const INSUFFICIENT_PRIVILEGE: Code = PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE;
/// `39P01`
pub const TRIGGER_PROTOCOL: Code = PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED;

#[must_use = "an error does nothing until it is raised"]
pub struct PgaError {
    code: Code,
    message: String,
    detail: Option<String>,
    hint: Option<String>,
}

impl PgaError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        PgaError { code, message: message.into(), detail: None, hint: None }
    }

    pub fn rule(message: impl Into<String>) -> Self {
        Self::new(RULE_VIOLATION, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMETER, message)
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Raise the error as an `ERROR`; the current transaction (or subtransaction) aborts.
    pub fn raise(self) -> ! {
        let mut report = ErrorReport::new(self.code, self.message, "pg_assistant");
        if let Some(detail) = self.detail {
            report = report.set_detail(detail);
        }
        if let Some(hint) = self.hint {
            report = report.set_hint(hint);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("ereport(ERROR) returned")
    }
}

/// Reject a NULL argument with `22004`, naming it.
pub fn require_arg<T>(value: Option<T>, name: &str) -> T {
    match value {
        Some(v) => v,
        None => PgaError::new(NULL_NOT_ALLOWED, format!("{name} must not be null")).raise(),
    }
}
