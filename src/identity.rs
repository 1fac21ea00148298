//! Who is calling, and their profile: the JWT claims PostgREST and Supabase pass in `request.jwt.claims`
//! (older PostgREST: one setting per claim, `request.jwt.claim.<name>`).

use std::ffi::CStr;

use pgrx::pg_sys::{PgBuiltInOids, PgOid};
use pgrx::prelude::*;

use crate::common::error::{require_arg, PgaError, INSUFFICIENT_PRIVILEGE, INVALID_PARAMETER};
use crate::common::owner::{as_owner, may_write_protected_columns};
use crate::common::plans::{self, Stmt};
use crate::common::trigger::{native_trigger, Event, Level, Timing, TriggerCall, Usage};

fn setting(name: &CStr) -> Option<String> {
    let value = std::str::from_utf8(raw_setting(name)).ok()?;
    (!value.is_empty()).then(|| value.to_owned())
}

/// A claim as text: from the `request.jwt.claims` JSON object, else from `request.jwt.claim.<name>`.
pub fn claim(name: &str, fallback_setting: &CStr) -> Option<String> {
    if let Some(json) = setting(c"request.jwt.claims") {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(&json) {
            match map.get(name) {
                Some(serde_json::Value::String(s)) => return Some(s.clone()),
                Some(serde_json::Value::Null) | None => {}
                Some(_) => return None,
            }
        }
    }
    setting(fallback_setting)
}

/// Parse a UUID in PostgreSQL's canonical form (hyphens optional, any case, optional braces).
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let s = s.trim();
    let s = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')).unwrap_or(s);
    let hex: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
    let hyphens = s.len() - hex.len();
    if hex.len() != 32 || !(hyphens == 0 || (hyphens == 4 && canonical_hyphens(s))) {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

fn canonical_hyphens(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36 && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
}

/// The raw value of a setting, borrowed until the setting next changes (use it at once).
fn raw_setting(name: &CStr) -> &'static [u8] {
    // SAFETY: GetConfigOption with missing_ok returns NULL or a string valid until the setting
    // changes; the caller only compares or copies it before running anything else.
    unsafe {
        let value = pg_sys::GetConfigOption(name.as_ptr(), true, false);
        if value.is_null() { &[] } else { CStr::from_ptr(value).to_bytes() }
    }
}

thread_local! {
    // The subject last parsed, with the two settings it was parsed from: rules ask for it once
    // per row, and the JSON is parsed again only when a setting changed.
    static SUBJECT: std::cell::RefCell<(Vec<u8>, Vec<u8>, Option<[u8; 16]>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new(), None)) };
}

pub fn current_user_uuid() -> Option<pgrx::Uuid> {
    let (claims, sub) = (raw_setting(c"request.jwt.claims"), raw_setting(c"request.jwt.claim.sub"));
    let hit = SUBJECT.with(|c| {
        let c = c.borrow();
        (c.0 == claims && c.1 == sub).then_some(c.2)
    });
    let subject = match hit {
        Some(subject) => subject,
        None => {
            let (claims, sub) = (claims.to_vec(), sub.to_vec());
            let subject = claim("sub", c"request.jwt.claim.sub").and_then(|s| parse_uuid(&s));
            SUBJECT.with(|c| *c.borrow_mut() = (claims, sub, subject));
            subject
        }
    };
    subject.map(pgrx::Uuid::from_bytes)
}

/// The `sub` claim of the request's JWT as a uuid; NULL when absent or not a uuid.
#[pg_extern(stable, parallel_safe)]
fn current_user_id() -> Option<pgrx::Uuid> {
    current_user_uuid()
}

/// The `role` claim of the request's JWT (`anon`, `authenticated`, `service_role`, ...); NULL when absent.
#[pg_extern(stable, parallel_safe)]
fn current_app_role() -> Option<String> {
    claim("role", c"request.jwt.claim.role")
}

/// The tenant of the caller's profile (`current_user_id()`), read natively by primary key: the
/// tenant-isolation policies compare rows with it. NULL without a profile or a tenant.
#[pg_extern(stable, parallel_safe)]
fn current_tenant_id() -> Option<pgrx::Uuid> {
    current_tenant()
}

pub fn current_tenant() -> Option<pgrx::Uuid> {
    let me = current_user_uuid()?;
    let key = pgrx::pg_sys::Datum::from(me.as_bytes().as_ptr());
    crate::common::lookup::by_unique_key(c"profiles", c"profiles_pkey", pgrx::pg_sys::F_UUID_EQ, key, |row| {
        // SAFETY: a non-null uuid datum of the row found.
        row.get("tenant_id").map(|d| pgrx::Uuid::from_bytes(unsafe { *(d.cast_mut_ptr::<[u8; 16]>()) }))
    })
    .flatten()
}

/// Whether the caller acts for every tenant: a superuser or BYPASSRLS role, or the JWT role
/// `admin` or `service_role` (the roles the tables' admin policies admit).
pub fn sees_every_tenant() -> bool {
    may_write_protected_columns() || matches!(current_app_role().as_deref(), Some("admin" | "service_role"))
}

#[pg_extern(stable, parallel_safe, name = "_sees_every_tenant")]
fn sees_every_tenant_sql() -> bool {
    sees_every_tenant()
}

/// Whether the caller may read the web analytics (views over the web tables): those the tables'
/// read policies admit (JWT `admin`, `ai_analysis`, `service_role`) and roles with BYPASSRLS.
#[pg_extern(stable, parallel_safe, name = "_sees_web_analytics")]
fn sees_web_analytics() -> bool {
    may_write_protected_columns() || matches!(current_app_role().as_deref(), Some("admin" | "ai_analysis" | "service_role"))
}

// ---- profiles ----------------------------------------------------------------------------------

/// A practical address check: one `@`, a non-empty local part, a dotted domain, no spaces or
/// control characters, at most 254 bytes (RFC 5321's path limit).
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else { return false };
    !local.is_empty()
        && local.len() <= 64
        && email.len() <= 254
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

static INSERT_PROFILE: Stmt = Stmt::new(
    "INSERT INTO @extschema@.profiles (id, email, display_name, week_reset_date)
     VALUES ($1, $2, $3, $4) RETURNING id",
    &[
        PgOid::BuiltIn(PgBuiltInOids::UUIDOID),
        PgOid::BuiltIn(PgBuiltInOids::TEXTOID),
        PgOid::BuiltIn(PgBuiltInOids::TEXTOID),
        PgOid::BuiltIn(PgBuiltInOids::TIMESTAMPTZOID),
    ],
);

/// A verified owner of the address takes it back: when another profile holds it, that profile
/// is given a placeholder address (RFC 2606's reserved `.invalid`) instead of the new one being
/// inserted, and its id comes back; when the caller's own profile holds it, nothing happens and
/// nothing comes back. The unique index on `email` decides (citext, so any case).
static INSERT_PROFILE_VERIFIED: Stmt = Stmt::new(
    "INSERT INTO @extschema@.profiles AS p (id, email, display_name, week_reset_date)
     VALUES ($1, $2, $3, $4)
     ON CONFLICT (email) DO UPDATE SET email = pg_catalog.concat(p.id, '@email-taken-over.invalid')
                         WHERE p.id <> EXCLUDED.id
     RETURNING id",
    &[
        PgOid::BuiltIn(PgBuiltInOids::UUIDOID),
        PgOid::BuiltIn(PgBuiltInOids::TEXTOID),
        PgOid::BuiltIn(PgBuiltInOids::TEXTOID),
        PgOid::BuiltIn(PgBuiltInOids::TIMESTAMPTZOID),
    ],
);

static LOG_EMAIL_TAKEN_OVER: Stmt = Stmt::new(
    "INSERT INTO @extschema@.logs (user_id, level, event, message, metadata)
     VALUES ($1, 'warn', 'email_taken_over', 'the verified owner of this profile''s address signed up',
             pg_catalog.jsonb_build_object('taken_by', $2))",
    &[PgOid::BuiltIn(PgBuiltInOids::UUIDOID), PgOid::BuiltIn(PgBuiltInOids::UUIDOID)],
);

/// Who vouches for the address: nobody (a service's word, unique as it stands), or the identity
/// provider (the auth hook, or a JWT `email` claim equal to it), whose owner wins a conflict.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Email {
    AsGiven,
    Verified,
}

fn insert_profile(user_id: pgrx::Uuid, email: Option<&str>, display_name: Option<&str>, vouched: Email) -> pgrx::Uuid {
    let email = match email.map(str::trim) {
        Some(e) if valid_email(e) => e,
        other => PgaError::new(INVALID_PARAMETER, "invalid email address")
            .detail(match other {
                None => "email is NULL.".to_string(),
                Some(e) => format!("\"{e}\" is not an email address."),
            })
            .hint("Pass an address of the form name@example.com.")
            .raise(),
    };
    let now = crate::common::time::now();
    let resets = crate::common::time::arg(crate::common::time::next_week_start(now));
    let args = [user_id.into(), email.into(), display_name.into(), resets];
    as_owner(|| {
        let first_id = |mut rows: pgrx::spi::SpiTupleTable<'_>| rows.next().and_then(|r| r.get::<pgrx::Uuid>(1).ok().flatten());
        if vouched == Email::AsGiven {
            return plans::with(&INSERT_PROFILE, &args, first_id);
        }
        match plans::with(&INSERT_PROFILE_VERIFIED, &args, first_id) {
            Some(holder) if holder != user_id => {
                plans::exec(&LOG_EMAIL_TAKEN_OVER, &[holder.into(), user_id.into()]);
                plans::with(&INSERT_PROFILE, &args, first_id)
            }
            Some(inserted) => Some(inserted),
            // The address is the caller's own already: their profile exists, which the plain
            // insert reports (23505) as for any second creation.
            None => plans::with(&INSERT_PROFILE, &args, first_id),
        }
    })
    .unwrap_or(user_id)
}

/// Implementation of `create_profile()` (an SQL wrapper returns the row): validates, checks the
/// caller may create this profile, inserts as the owner; returns the new id.
///
/// A caller without BYPASSRLS creates only their own profile, and only with the address of
/// their JWT's `email` claim (which then wins over another profile holding it).
#[pg_extern(volatile, parallel_unsafe, name = "_create_profile")]
fn create_profile_row(user_id: Option<pgrx::Uuid>, email: Option<&str>, display_name: Option<&str>) -> pgrx::Uuid {
    let user_id = require_arg(user_id, "user_id");
    if may_write_protected_columns() {
        return insert_profile(user_id, email, display_name, Email::AsGiven);
    }
    if current_user_uuid() != Some(user_id) {
        PgaError::new(INSUFFICIENT_PRIVILEGE, "permission denied to create a profile for another user")
            .detail(format!(
                "user_id {user_id} is not the caller's JWT subject ({}).",
                current_user_uuid().map(|u| u.to_string()).unwrap_or_else(|| "none".into())
            ))
            .hint("Users create only their own profile; services (BYPASSRLS) create any.")
            .raise();
    }
    match claim("email", c"request.jwt.claim.email") {
        // Letting users pick any address would let them squat someone's, and probe which
        // addresses have an account through the unique index.
        None => PgaError::new(INSUFFICIENT_PRIVILEGE, "permission denied to create a profile without a verified address")
            .detail("The caller's JWT carries no email claim.")
            .hint("Issue tokens with the user's email claim, or create profiles from a service (BYPASSRLS).")
            .raise(),
        Some(verified) if email.is_some_and(|e| e.trim().to_lowercase() == verified.trim().to_lowercase()) => {
            insert_profile(user_id, email, display_name, Email::Verified)
        }
        Some(_) => PgaError::new(INSUFFICIENT_PRIVILEGE, "permission denied to create a profile with another address")
            .detail("The address differs from the email claim of the caller's JWT.")
            .hint("Create the profile with the address the identity provider verified.")
            .raise(),
    }
}

/// Written by the rules, the creation path and callers with BYPASSRLS only. `email` too: a
/// user could otherwise take someone's address before they sign up, or probe which addresses
/// have an account through the unique index.
const PROFILE_PROTECTED: [&str; 8] = [
    "id",
    "total_completed_sessions",
    "weekly_completed_sessions",
    "weekly_started_sessions",
    "week_reset_date",
    "weekly_session_limit",
    "tenant_id",
    "email",
];

const BEFORE_UPDATE_ROW: Usage = Usage { timing: Timing::Before, level: Level::Row, events: &[Event::Update] };

native_trigger!(pga_profiles_guard, pg_finfo_pga_profiles_guard, "profiles_guard_protected_columns", profiles_guard);

/// Counters, limits and the tenant are not the user's to change (42501).
fn profiles_guard(call: &TriggerCall) -> pg_sys::Datum {
    call.require(&BEFORE_UPDATE_ROW, None);
    call.require_own_table(c"profiles");
    call.guard_protected_columns(&PROFILE_PROTECTED);
    call.keep(call.new_tuple())
}

const AFTER_INSERT_ROW: Usage = Usage { timing: Timing::After, level: Level::Row, events: &[Event::Insert] };

native_trigger!(pga_create_profile_for_auth_user, pg_finfo_pga_create_profile_for_auth_user, "create_profile_for_auth_user", profile_for_auth_user);

/// AFTER INSERT ON auth.users: the new user's profile (Supabase).
fn profile_for_auth_user(call: &TriggerCall) -> pg_sys::Datum {
    call.require(&AFTER_INSERT_ROW, None);
    // It creates profiles as the owner: only sign-ups may drive it.
    if call.qualified_table_name() != "auth.users" {
        PgaError::new(
            crate::common::error::TRIGGER_PROTOCOL,
            "create_profile_for_auth_user() may only be used by table auth.users",
        )
        .detail(format!("Trigger \"{}\" is on {}.", call.trigger_name(), call.qualified_table_name()))
        .raise();
    }
    let new = call.new_tuple();
    let id = call.get(new, call.column("id"));
    let email = call.get(new, call.column("email"));
    // SAFETY: auth.users.id is uuid and email is varchar/text: both have text-like output.
    let id = id.map(|d| unsafe { crate::common::trigger::output(pg_sys::UUIDOID, d) });
    let email = email.map(|d| unsafe { crate::common::trigger::output(pg_sys::TEXTOID, d) });
    let id = id.and_then(|s| parse_uuid(&s)).map(pgrx::Uuid::from_bytes);
    // The identity provider vouches for the address: a profile squatting on it gives it up.
    insert_profile(require_arg(id, "auth.users.id"), email.as_deref(), None, Email::Verified);
    call.keep(new)
}

/// Run once by the install script: when Supabase's `auth.users` exists, every new user gets a
/// profile. Elsewhere applications call `create_profile` themselves.
#[pg_extern(volatile, name = "_install_auth_hook")]
fn install_auth_hook() -> bool {
    crate::common::owner::require_privileged_caller("_install_auth_hook");
    let exists = Spi::get_one::<bool>("SELECT pg_catalog.to_regclass('auth.users') IS NOT NULL").ok().flatten();
    if exists != Some(true) {
        return false;
    }
    let schema = crate::common::schema::quoted();
    Spi::run(&format!(
        "CREATE FUNCTION {schema}.create_profile_for_auth_user() RETURNS trigger
             LANGUAGE c AS 'pg_assistant', 'pga_create_profile_for_auth_user';
         REVOKE EXECUTE ON FUNCTION {schema}.create_profile_for_auth_user() FROM PUBLIC;
         CREATE TRIGGER pg_assistant_create_profile AFTER INSERT ON auth.users
             FOR EACH ROW EXECUTE FUNCTION {schema}.create_profile_for_auth_user()"
    ))
    .is_ok()
}
