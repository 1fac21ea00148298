//! conversations (DESIGN.md 3.4, source 001): tenants' assistant chats, feedback and usage.
//! Tables, views and policies are declared in `sql/conversations.sql`.
//!
//! A message takes its tenant from its conversation (row level) and the conversation's counters
//! follow once per conversation per statement, as the owner, from the transition tables.
//! Feedback takes its tenant from its message. Callers act within their own tenant: a write into
//! another tenant's conversation or message is refused with `42501` before anything of it is read
//! into an error.

use std::cell::RefCell;
use std::collections::HashMap;

use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::{self, PgBuiltInOids, PgOid};
use pgrx::prelude::*;

use crate::common::error::{require_arg, PgaError, INSUFFICIENT_PRIVILEGE};
use crate::common::owner::{as_owner, as_owner_by_key, may_write_protected_columns, require_privileged_caller, row_security_violation};
use crate::common::lookup::Seen;
use crate::common::parent::{self, Outcome};
use crate::common::plans::{self, Stmt};
use crate::common::restore::loading_dump;
use crate::common::time::arg as ts;
use crate::common::trigger::{native_trigger, statement_done, Event, Level, Timing, Transition, TriggerCall, Usage};
use crate::identity::{current_tenant, current_user_uuid, sees_every_tenant};

const UUID: PgOid = PgOid::BuiltIn(PgBuiltInOids::UUIDOID);
const TIMESTAMPTZ: PgOid = PgOid::BuiltIn(PgBuiltInOids::TIMESTAMPTZOID);
const INT4: PgOid = PgOid::BuiltIn(PgBuiltInOids::INT4OID);
const DATE: PgOid = PgOid::BuiltIn(PgBuiltInOids::DATEOID);
const NUMERIC: PgOid = PgOid::BuiltIn(PgBuiltInOids::NUMERICOID);

fn uuid_bytes(datum: pg_sys::Datum) -> [u8; 16] {
    // SAFETY: uuid is a pass-by-reference 16-byte value.
    unsafe { *(datum.cast_mut_ptr::<[u8; 16]>()) }
}

fn uuid_text(bytes: [u8; 16]) -> String {
    pgrx::Uuid::from_bytes(bytes).to_string()
}

/// Whether the caller may write rows of `tenant`: their own tenant, or every tenant for
/// services and admins.
fn may_write_tenant(tenant: [u8; 16]) -> bool {
    sees_every_tenant() || current_tenant().is_some_and(|mine| *mine.as_bytes() == tenant)
}

thread_local! {
    // Conversation -> tenant, looked up once per conversation per INSERT statement; cleared by
    // the statement's counter trigger and at every (sub)transaction end.
    // With the tenant, where the conversation's version read is: the counter trigger of the
    // same statement starts there.
    static CONVERSATION_TENANTS: RefCell<HashMap<[u8; 16], Option<([u8; 16], Seen)>>> = RefCell::new(HashMap::new());
}

pub fn forget_statement_state() {
    CONVERSATION_TENANTS.with(|c| c.borrow_mut().clear());
}

/// The tenant of a row of the extension's `table`, by its primary key (read natively; not shown
/// to a caller who may not see it), and where that row was read.
fn tenant_of(table: &std::ffi::CStr, index: &std::ffi::CStr, key: pg_sys::Datum) -> Option<([u8; 16], Seen)> {
    crate::common::lookup::by_unique_key(table, index, pg_sys::F_UUID_EQ, key, |row| {
        row.get("tenant_id").map(|t| (uuid_bytes(t), row.seen()))
    })
    .flatten()
}

fn conversation_tenant(conversation: pg_sys::Datum) -> Option<[u8; 16]> {
    let key = uuid_bytes(conversation);
    if let Some(hit) = CONVERSATION_TENANTS.with(|c| c.borrow().get(&key).copied()) {
        return hit.map(|(tenant, _)| tenant);
    }
    let found = tenant_of(c"conversations", c"conversations_pkey", conversation);
    CONVERSATION_TENANTS.with(|c| c.borrow_mut().insert(key, found));
    found.map(|(tenant, _)| tenant)
}

/// Where this statement read `conversation`, if it did.
fn conversation_seen(conversation: pg_sys::Datum) -> Option<Seen> {
    let key = uuid_bytes(conversation);
    CONVERSATION_TENANTS.with(|c| c.borrow().get(&key).copied().flatten().map(|(_, seen)| seen))
}

fn missing_parent(table: &str, column: &str, parent: &str, key: pg_sys::Datum) -> ! {
    PgaError::new(
        pgrx::PgSqlErrorCode::ERRCODE_FOREIGN_KEY_VIOLATION,
        format!("insert or update on table \"{table}\" violates foreign key constraint \"{table}_{column}_fkey\""),
    )
    .detail(format!("Key ({column})=({}) is not present in table \"{parent}\".", uuid_text(uuid_bytes(key))))
    .raise()
}

/// Fills `tenant_id` of `call`'s new row from its parent's tenant; a supplied value that differs
/// is refused with `P0001` `<what> tenant_id does not match its <parent>`.
fn fill_tenant(call: &TriggerCall, tenant: [u8; 16], what: &str, parent: &str) -> pg_sys::Datum {
    let new = call.new_tuple();
    let col = call.column("tenant_id");
    match call.get(new, col) {
        None => call.modified(new, [(col, Some(pg_sys::Datum::from(tenant.as_ptr())))]),
        Some(given) if uuid_bytes(given) == tenant => call.keep(new),
        Some(given) => PgaError::rule(format!("{what} tenant_id does not match its {parent}"))
            .detail(format!("tenant_id {} differs from the {parent}'s tenant {}.", uuid_text(uuid_bytes(given)), uuid_text(tenant)))
            .hint("Leave tenant_id out: it is filled from the ".to_owned() + parent + ".")
            .raise(),
    }
}

/// On UPDATE, `columns` keep their values (`P0001`): moving a row would leave the counters or
/// the tenant behind.
fn keep_columns(call: &TriggerCall, table: &str, columns: &[&str]) {
    for &name in columns {
        if call.changed(call.column(name)) {
            PgaError::rule(format!("column \"{name}\" of {table} cannot change"))
                .detail(format!("Failing row {} of {}.", call.describe_row(call.old_tuple()), call.qualified_table_name()))
                .hint("Create a new row instead.")
                .raise();
        }
    }
}

const BEFORE_WRITE: Usage = Usage { timing: Timing::Before, level: Level::Row, events: &[Event::Insert, Event::Update] };

// ---- conversations -------------------------------------------------------------------------

native_trigger!(
    pga_conversations_before_write,
    pg_finfo_pga_conversations_before_write,
    "conversations_before_write",
    conversations_before_write
);

/// Counters are the rules' (`42501` for ordinary callers who set or change them); the tenant
/// never changes (its messages and feedback carry it) and the owner changes only by services.
fn conversations_before_write(call: &TriggerCall) -> pg_sys::Datum {
    call.require(&BEFORE_WRITE, None);
    call.require_own_table(c"conversations");
    let new = call.new_tuple();
    match call.event() {
        Event::Update => {
            keep_columns(call, "a conversation", &["tenant_id"]);
            call.guard_protected_columns(&["message_count", "last_message_at", "user_id", "id"]);
        }
        _ if !may_write_protected_columns() => {
            let count = call.get(new, call.column("message_count")).is_some_and(|d| d.value() as i32 != 0);
            let last = call.get(new, call.column("last_message_at")).is_some();
            if count || last {
                PgaError::new(INSUFFICIENT_PRIVILEGE, "permission denied to set the counters of table \"conversations\"")
                    .detail("message_count and last_message_at are kept by pg_assistant.")
                    .hint("Leave them at their defaults.")
                    .raise();
            }
        }
        _ => {}
    }
    call.keep(new)
}

// ---- conversation messages: tenant from the conversation -------------------------------------

native_trigger!(
    pga_conversation_messages_before_write,
    pg_finfo_pga_conversation_messages_before_write,
    "conversation_messages_before_write",
    conversation_messages_before_write
);

fn conversation_messages_before_write(call: &TriggerCall) -> pg_sys::Datum {
    call.require(&BEFORE_WRITE, None);
    call.require_own_table(c"conversation_messages");
    if call.event() == Event::Update {
        keep_columns(call, "a conversation message", &["conversation_id", "tenant_id"]);
        return call.keep(call.new_tuple());
    }
    let new = call.new_tuple();
    // NOT NULL on conversation_id reports a missing value.
    let Some(conversation) = call.get(new, call.column("conversation_id")) else { return call.keep(new) };
    let Some(tenant) = conversation_tenant(conversation) else {
        missing_parent("conversation_messages", "conversation_id", "conversations", conversation)
    };
    if !may_write_tenant(tenant) {
        row_security_violation("conversation_messages");
    }
    fill_tenant(call, tenant, "message", "conversation")
}

// ---- conversation messages: the conversation's counters, once per conversation per statement

static MESSAGES_INSERTED: Stmt = Stmt::new(
    "WITH d AS (SELECT conversation_id, count(*) AS n, max(created_at) AS last FROM new_rows GROUP BY conversation_id)
     UPDATE @extschema@.conversations c
        SET message_count = c.message_count + d.n, last_message_at = greatest(c.last_message_at, d.last)
       FROM d
      WHERE c.id = d.conversation_id",
    &[],
);
static MESSAGE_INSERTED_ONE: Stmt = Stmt::new(
    "UPDATE @extschema@.conversations
        SET message_count = message_count + 1, last_message_at = greatest(last_message_at, $2)
      WHERE id = $1",
    &[UUID, TIMESTAMPTZ],
);
/// When the latest message goes, the latest remaining one becomes `last_message_at` (one index
/// probe). A message inserted concurrently has already moved `last_message_at` past the deleted
/// ones (the row lock serialises the two), so it is kept.
static MESSAGES_DELETED: Stmt = Stmt::new(
    "WITH d AS (SELECT conversation_id, count(*) AS n, max(created_at) AS last FROM old_rows GROUP BY conversation_id)
     UPDATE @extschema@.conversations c
        SET message_count = greatest(c.message_count - d.n, 0),
            last_message_at = CASE WHEN c.last_message_at IS NULL OR c.last_message_at <= d.last
                                   THEN (SELECT max(m.created_at) FROM @extschema@.conversation_messages m
                                          WHERE m.conversation_id = c.id)
                                   ELSE c.last_message_at END
       FROM d
      WHERE c.id = d.conversation_id",
    &[],
);
/// A statement's conversations, locked in id order before their counters are written: two
/// statements over the same conversations then wait for each other instead of deadlocking.
static LOCK_INSERTED: Stmt = Stmt::new(
    "SELECT 1 FROM @extschema@.conversations
      WHERE id IN (SELECT conversation_id FROM new_rows) ORDER BY id FOR NO KEY UPDATE",
    &[],
);
static LOCK_DELETED: Stmt = Stmt::new(
    "SELECT 1 FROM @extschema@.conversations
      WHERE id IN (SELECT conversation_id FROM old_rows) ORDER BY id FOR NO KEY UPDATE",
    &[],
);

const AFTER_STATEMENT_INSERT_DELETE: Usage =
    Usage { timing: Timing::After, level: Level::Statement, events: &[Event::Insert, Event::Delete] };

native_trigger!(
    pga_conversation_messages_count,
    pg_finfo_pga_conversation_messages_count,
    "conversation_messages_count",
    conversation_messages_count
);

fn conversation_messages_count(call: &TriggerCall) -> pg_sys::Datum {
    call.require(&AFTER_STATEMENT_INSERT_DELETE, None);
    call.require_own_table(c"conversation_messages");
    let inserted = call.event() == Event::Insert;
    let which = if inserted { Transition::New } else { Transition::Old };
    let loading = loading_dump(call.relid());
    let only = if inserted && !loading { call.only_transition_row(which) } else { None };
    let conversation = only.as_ref().and_then(|row| row.get(call.column("conversation_id")));
    let seen = conversation.and_then(conversation_seen);
    forget_statement_state();
    if loading {
        return statement_done(); // restored conversations carry their counts
    }
    if call.transition_len(which) == 0 {
        return statement_done();
    }
    // One row, or rows of one conversation: nothing to order.
    match only.as_ref().and_then(|row| Some((conversation?, row.get(call.column("created_at"))))) {
        Some((conversation, created)) => {
            let counted = parent::update_by_key_at(c"conversations", c"conversations_pkey", pg_sys::F_UUID_EQ, conversation, seen, |c| {
                c.add_i32("message_count", c.get_i32("message_count").unwrap_or(0), 1);
                let last = c.get("last_message_at").map(|d| d.value() as i64);
                if let Some(created) = created.map(|d| d.value() as i64).filter(|&t| last.is_none_or(|l| t > l)) {
                    c.set("last_message_at", created.into());
                }
            });
            if let Outcome::Declined = counted {
                // SAFETY: a non-null uuid datum of the transition row, alive while `only` is.
                let conversation = unsafe { DatumWithOid::new(conversation, UUID.value()) };
                let created = created.map(|d| ts(d.value() as i64)).unwrap_or_else(|| DatumWithOid::null_oid(TIMESTAMPTZ.value()));
                as_owner_by_key(|| plans::exec(&MESSAGE_INSERTED_ONE, &[conversation, created]));
            }
        }
        None => {
            as_owner(|| {
                Spi::connect_mut(|client| {
                    call.register_transition_tables();
                    plans::run(client, if inserted { &LOCK_INSERTED } else { &LOCK_DELETED }, &[]);
                    plans::run(client, if inserted { &MESSAGES_INSERTED } else { &MESSAGES_DELETED }, &[]);
                })
            });
        }
    }
    statement_done()
}

// ---- feedback: tenant from the message, only on messages of the caller's tenant ------------

native_trigger!(pga_feedback_before_write, pg_finfo_pga_feedback_before_write, "feedback_before_write", feedback_before_write);

fn feedback_before_write(call: &TriggerCall) -> pg_sys::Datum {
    call.require(&BEFORE_WRITE, None);
    call.require_own_table(c"feedback");
    let new = call.new_tuple();
    let Some(message) = call.get(new, call.column("message_id")) else { return call.keep(new) };
    let Some((tenant, _)) = tenant_of(c"conversation_messages", c"conversation_messages_pkey", message) else {
        missing_parent("feedback", "message_id", "conversation_messages", message)
    };
    if !may_write_tenant(tenant) {
        row_security_violation("feedback");
    }
    fill_tenant(call, tenant, "feedback", "message")
}

// ---- usage ---------------------------------------------------------------------------------

static UPSERT_USAGE: Stmt = Stmt::new(
    "INSERT INTO @extschema@.usage_metrics AS u
            (tenant_id, user_id, date, message_count, input_tokens, output_tokens, estimated_cost)
     VALUES ($1, $2, $3, 1, $4, $5, $6)
     ON CONFLICT (tenant_id, user_id, date) DO UPDATE
        SET message_count = u.message_count + 1,
            input_tokens = u.input_tokens + excluded.input_tokens,
            output_tokens = u.output_tokens + excluded.output_tokens,
            estimated_cost = u.estimated_cost + excluded.estimated_cost
  RETURNING u.tenant_id, u.user_id, u.date, u.message_count, u.input_tokens, u.output_tokens, u.total_tokens,
            u.estimated_cost, u.created_at, u.updated_at",
    &[UUID, UUID, DATE, INT4, INT4, NUMERIC],
);

fn non_negative(value: Option<i32>, name: &str) -> i32 {
    let v = require_arg(value, name);
    if v < 0 {
        PgaError::invalid(format!("{name} must not be negative")).detail(format!("{name} was {v}.")).raise();
    }
    v
}

/// Records one message's usage for `(p_tenant_id, p_user_id, p_date)` in one atomic upsert and
/// returns the day's row: concurrent callers each add their own. Negative arguments `22023`,
/// NULL `22004`. Callers without BYPASSRLS (other than the JWT roles admin and service_role)
/// record only their own usage, in their own tenant (`42501` otherwise).
#[pg_extern(volatile, parallel_unsafe, requires = ["conversations"])]
fn increment_usage_metrics(
    p_tenant_id: Option<pgrx::Uuid>,
    p_user_id: Option<pgrx::Uuid>,
    p_date: Option<pgrx::datum::Date>,
    p_input_tokens: Option<i32>,
    p_output_tokens: Option<i32>,
    p_cost: Option<pgrx::AnyNumeric>,
) -> pgrx::composite_type!('static, "usage_metrics") {
    let tenant = require_arg(p_tenant_id, "p_tenant_id");
    let user = require_arg(p_user_id, "p_user_id");
    let date = require_arg(p_date, "p_date");
    let input = non_negative(p_input_tokens, "p_input_tokens");
    let output = non_negative(p_output_tokens, "p_output_tokens");
    let cost = require_arg(p_cost, "p_cost");
    if cost < pgrx::AnyNumeric::from(0) || cost.is_nan() {
        PgaError::invalid("p_cost must not be negative").detail(format!("p_cost was {cost}.")).raise();
    }
    if !date.is_finite() {
        PgaError::invalid("p_date must be a finite date").detail(format!("p_date was {date}.")).raise();
    }
    if !sees_every_tenant() && (current_user_uuid() != Some(user) || current_tenant() != Some(tenant)) {
        PgaError::new(INSUFFICIENT_PRIVILEGE, "permission denied to record usage for another user or tenant")
            .detail("Callers record only their own usage, in their own tenant.")
            .hint("Record usage from a service role.")
            .raise();
    }
    let Some(typoid) = crate::common::schema::relation(c"usage_metrics").map(|r| unsafe { pg_sys::get_rel_type_id(r) }) else {
        PgaError::new(pgrx::PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE, "table usage_metrics is missing").raise()
    };
    let args = [tenant.into(), user.into(), date.into(), input.into(), output.into(), cost.into()];
    // The values are copied out of SPI's memory before it goes; the row is built afterwards, in
    // the function's own memory context.
    let row = as_owner_by_key(|| {
        plans::with(&UPSERT_USAGE, &args, |mut rows| {
            let row = rows.next().expect("an upsert returns its row");
            UsageRow {
                tenant_id: row.get(1).ok().flatten(),
                user_id: row.get(2).ok().flatten(),
                date: row.get(3).ok().flatten(),
                message_count: row.get(4).ok().flatten(),
                input_tokens: row.get(5).ok().flatten(),
                output_tokens: row.get(6).ok().flatten(),
                total_tokens: row.get(7).ok().flatten(),
                estimated_cost: row.get::<pgrx::AnyNumeric>(8).ok().flatten().map(|n| n.to_string()),
                created_at: row.get(9).ok().flatten(),
                updated_at: row.get(10).ok().flatten(),
            }
        })
    });
    let mut tuple = PgHeapTuple::new_composite_type_by_oid(typoid).expect("usage_metrics row type");
    let fail = |e: pgrx::datum::TryFromDatumError| -> ! { panic!("pg_assistant: usage_metrics row: {e}") };
    tuple.set_by_name("tenant_id", row.tenant_id).unwrap_or_else(|e| fail(e));
    tuple.set_by_name("user_id", row.user_id).unwrap_or_else(|e| fail(e));
    tuple.set_by_name("date", row.date).unwrap_or_else(|e| fail(e));
    tuple.set_by_name("message_count", row.message_count).unwrap_or_else(|e| fail(e));
    tuple.set_by_name("input_tokens", row.input_tokens).unwrap_or_else(|e| fail(e));
    tuple.set_by_name("output_tokens", row.output_tokens).unwrap_or_else(|e| fail(e));
    tuple.set_by_name("total_tokens", row.total_tokens).unwrap_or_else(|e| fail(e));
    let cost = row.estimated_cost.and_then(|c| pgrx::AnyNumeric::try_from(c.as_str()).ok());
    tuple.set_by_name("estimated_cost", cost).unwrap_or_else(|e| fail(e));
    tuple.set_by_name("created_at", row.created_at).unwrap_or_else(|e| fail(e));
    tuple.set_by_name("updated_at", row.updated_at).unwrap_or_else(|e| fail(e));
    tuple
}

/// One row of `usage_metrics`, as Rust values (nothing of it lives in SPI's memory).
struct UsageRow {
    tenant_id: Option<pgrx::Uuid>,
    user_id: Option<pgrx::Uuid>,
    date: Option<pgrx::datum::Date>,
    message_count: Option<i32>,
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
    total_tokens: Option<i64>,
    estimated_cost: Option<String>,
    created_at: Option<pgrx::datum::TimestampWithTimeZone>,
    updated_at: Option<pgrx::datum::TimestampWithTimeZone>,
}

// ---- jobs ----------------------------------------------------------------------------------

/// Refreshes every materialized view of the extension CONCURRENTLY (readers and writers of the
/// tables go on meanwhile). Services and jobs only (`42501` otherwise).
#[pg_extern(volatile, parallel_unsafe)]
fn refresh_analytics_views() {
    require_privileged_caller("refresh_analytics_views");
    let schema = crate::common::schema::quoted();
    as_owner(|| {
        Spi::connect_mut(|client| {
            for view in ["message_feedback_summary", "monthly_usage_summary", "daily_friction_summary", "component_performance"] {
                client
                    .update(&format!("REFRESH MATERIALIZED VIEW CONCURRENTLY {schema}.{view}"), None, &[])
                    .unwrap_or_else(|e| panic!("pg_assistant: refresh {view}: {e}"));
            }
        })
    });
}
