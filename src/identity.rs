//! Who is calling: the JWT claims PostgREST and Supabase pass in `request.jwt.claims`
//! (older PostgREST: one setting per claim, `request.jwt.claim.<name>`).

use std::ffi::CStr;

use pgrx::prelude::*;

fn setting(name: &CStr) -> Option<String> {
    // SAFETY: GetConfigOption with missing_ok returns NULL or a pointer valid until the next
    // change of the setting; we copy it at once.
    unsafe {
        let value = pg_sys::GetConfigOption(name.as_ptr(), true, false);
        if value.is_null() {
            return None;
        }
        let s = CStr::from_ptr(value).to_str().ok()?;
        (!s.is_empty()).then(|| s.to_owned())
    }
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

pub fn current_user_uuid() -> Option<pgrx::Uuid> {
    let sub = claim("sub", c"request.jwt.claim.sub")?;
    parse_uuid(&sub).map(pgrx::Uuid::from_bytes)
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

/// Whether the current database role bypasses row-level security (superuser or BYPASSRLS).
pub fn caller_bypasses_rls() -> bool {
    // SAFETY: plain catalog lookups for the current user.
    unsafe {
        let role = pg_sys::GetUserId();
        pg_sys::superuser_arg(role) || pg_sys::has_bypassrls_privilege(role)
    }
}
