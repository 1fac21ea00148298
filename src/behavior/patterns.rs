//! behavior_patterns: the embedding and the JSON shapes validated on every write (`22023`,
//! naming the offending path), the embedding's norm kept beside it; `use_count` bumped only by
//! the pattern's owner or a service caller.

use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::{self, PgBuiltInOids, PgOid};
use pgrx::prelude::*;
use serde_json::Value;

use super::embedding;
use crate::common::error::{require_arg, PgaError, INSUFFICIENT_PRIVILEGE};
use crate::common::owner::{as_owner, may_write_protected_columns};
use crate::common::plans::{self, Stmt};
use crate::common::trigger::{native_trigger, output, Event, Level, Timing, TriggerCall, Usage};
use crate::identity::current_user_uuid;

const UUID: PgOid = PgOid::BuiltIn(PgBuiltInOids::UUIDOID);

const BEFORE_WRITE: Usage = Usage { timing: Timing::Before, level: Level::Row, events: &[Event::Insert, Event::Update] };

native_trigger!(
    pga_behavior_patterns_before_write,
    pg_finfo_pga_behavior_patterns_before_write,
    "behavior_patterns_before_write",
    behavior_patterns_before_write
);

fn behavior_patterns_before_write(call: &TriggerCall) -> pg_sys::Datum {
    call.require(&BEFORE_WRITE, None);
    call.require_own_table(c"behavior_patterns");
    if call.event() == Event::Update {
        // Row-level security checks the old and the new row at two moments, between which a
        // caller can change their own claims: the owner must not move.
        call.guard_protected_columns(&["user_id", "id"]);
    }
    let new = call.new_tuple();
    for (name, check) in [("context", check_context as fn(&Value) -> Result<(), String>), ("actions", check_actions)] {
        // NOT NULL reports a missing value.
        if let Some(datum) = call.get(new, call.column(name)) {
            // SAFETY: a non-null jsonb datum of the new row.
            let text = unsafe { output(pg_sys::JSONBOID, datum) };
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if let Err(problem) = check(&value) {
                PgaError::invalid(format!("invalid behavior pattern: {problem}"))
                    .detail(format!("Failing row {} of {}.", call.describe_row(new), call.qualified_table_name()))
                    .hint(hint(name))
                    .raise();
            }
        }
    }
    let norm_col = call.column("trigger_embedding_norm");
    let norm = call.get(new, call.column("trigger_embedding")).map(|datum| {
        // SAFETY: a non-null real[] datum; a detoasted copy lives in the trigger's memory context.
        let values = unsafe { embedding::elements(embedding::detoasted(datum)) };
        match values.and_then(|v| embedding::validate(v).map(|()| embedding::kept_norm(v))) {
            Ok(norm) => norm,
            Err(e) => e.raise("trigger_embedding"),
        }
    });
    call.modified(new, [(norm_col, norm.map(|n| pg_sys::Datum::from(n.to_bits() as usize)))])
}

fn hint(column: &str) -> &'static str {
    if column == "context" {
        "context is an object; directory, project_type and branch are strings, files_touched an array of strings."
    } else {
        "actions is an array of objects, each with a string \"tool\" and optionally a \"parameters\" object, \"outcome\" and \"timestamp\" strings and a \"duration_ms\" number >= 0."
    }
}

/// `context`: an object; `directory`, `project_type` and `branch` strings, `files_touched` an
/// array of strings; other keys are free.
pub fn check_context(value: &Value) -> Result<(), String> {
    let Value::Object(map) = value else { return Err(format!("context must be a JSON object, not {}", kind(value))) };
    for key in ["directory", "project_type", "branch"] {
        if let Some(v) = map.get(key) {
            if !v.is_string() {
                return Err(format!("context.{key} must be a string, not {}", kind(v)));
            }
        }
    }
    if let Some(files) = map.get("files_touched") {
        let Value::Array(files) = files else {
            return Err(format!("context.files_touched must be an array of strings, not {}", kind(files)));
        };
        if let Some((i, v)) = files.iter().enumerate().find(|(_, v)| !v.is_string()) {
            return Err(format!("context.files_touched[{i}] must be a string, not {}", kind(v)));
        }
    }
    Ok(())
}

/// `actions`: an array of objects, each with a string `tool`; optional `parameters` object,
/// `outcome` and `timestamp` strings, `duration_ms` number >= 0.
pub fn check_actions(value: &Value) -> Result<(), String> {
    let Value::Array(actions) = value else { return Err(format!("actions must be a JSON array, not {}", kind(value))) };
    for (i, action) in actions.iter().enumerate() {
        let Value::Object(a) = action else { return Err(format!("actions[{i}] must be an object, not {}", kind(action))) };
        match a.get("tool") {
            Some(Value::String(_)) => {}
            Some(v) => return Err(format!("actions[{i}].tool must be a string, not {}", kind(v))),
            None => return Err(format!("actions[{i}].tool is required")),
        }
        if let Some(v) = a.get("parameters") {
            if !v.is_object() {
                return Err(format!("actions[{i}].parameters must be an object, not {}", kind(v)));
            }
        }
        for key in ["outcome", "timestamp"] {
            if let Some(v) = a.get(key) {
                if !v.is_string() {
                    return Err(format!("actions[{i}].{key} must be a string, not {}", kind(v)));
                }
            }
        }
        if let Some(v) = a.get("duration_ms") {
            if !v.as_f64().is_some_and(|d| d >= 0.0) {
                return Err(format!("actions[{i}].duration_ms must be a number >= 0, not {}", shown(v)));
            }
        }
    }
    Ok(())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        other => kind(other).to_owned(),
    }
}

// ---- increment_pattern_use_count ---------------------------------------------------------------

static BUMP_USE_COUNT: Stmt = Stmt::new(
    "UPDATE @extschema@.behavior_patterns
        SET use_count = use_count + 1, last_used_at = pg_catalog.now()
      WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2)
  RETURNING use_count",
    &[UUID, UUID],
);

/// Bumps `use_count` and `last_used_at` of a pattern and returns the new count. Only the
/// pattern's owner or a service caller (superuser or BYPASSRLS) may; anyone else gets `42501`
/// whether or not the pattern exists. A service caller asking for a missing pattern gets NULL.
#[pg_extern(volatile, parallel_unsafe)]
fn increment_pattern_use_count(pattern_id: Option<pgrx::Uuid>) -> Option<i32> {
    let pattern = require_arg(pattern_id, "pattern_id");
    let owner = if may_write_protected_columns() {
        None
    } else {
        let caller = current_user_uuid();
        let key = pg_sys::Datum::from(pattern.as_bytes().as_ptr());
        let owned = caller.is_some_and(|me| {
            crate::common::lookup::by_unique_key(c"behavior_patterns", c"behavior_patterns_pkey", pg_sys::F_UUID_EQ, key, |row| {
                row.get("user_id").map(|d| unsafe { *(d.cast_mut_ptr::<[u8; 16]>()) } == *me.as_bytes())
            })
            .flatten()
            .unwrap_or(false)
        });
        if !owned {
            PgaError::new(INSUFFICIENT_PRIVILEGE, "permission denied to use this behavior pattern")
                .detail("Only the pattern's owner or a service role may record its use.")
                .raise();
        }
        caller
    };
    as_owner(|| {
        let args = [DatumWithOid::from(pattern), owner.map(DatumWithOid::from).unwrap_or_else(|| DatumWithOid::null_oid(UUID.value()))];
        plans::with(&BUMP_USE_COUNT, &args, |mut rows| rows.next().and_then(|r| r.get::<i32>(1).ok().flatten()))
    })
}
