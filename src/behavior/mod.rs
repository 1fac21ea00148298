//! behavior (DESIGN.md 3.3, sources 000 and 004): analytics events with exact per-customer and
//! per-session summaries, and behaviour patterns with native similarity search. Tables,
//! triggers and policies are declared in `sql/behavior.sql`.

pub mod embedding;
pub mod insights;
pub mod kernel;
pub mod patterns;
pub mod similarity;
