//! Column numbers looked up once per (relation, column) and reused.
//!
//! A cached entry is checked against the live tuple descriptor on every use (one name
//! comparison), so a column that was dropped, renamed or re-added is looked up again.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CStr;
use std::hash::{BuildHasherDefault, Hasher};

use pgrx::pg_sys;

#[derive(Clone, Copy, Debug)]
pub struct Column {
    /// 1-based attribute number.
    pub attnum: i16,
    pub type_oid: pg_sys::Oid,
    pub by_value: bool,
    pub len: i16,
}

thread_local! {
    // Per relation, the (name, attnum) pairs looked up so far; a hit allocates nothing.
    static CACHE: RefCell<HashMap<pg_sys::Oid, Vec<(Box<str>, i16)>, BuildHasherDefault<OidHasher>>> =
        RefCell::new(HashMap::default());
}

/// OIDs are small distinct integers: one multiplication spreads them (the default SipHash
/// costs more than the rest of a lookup on the one-row paths).
#[derive(Default)]
struct OidHasher(u64);

impl Hasher for OidHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// # Safety
/// `tupdesc` must be a valid tuple descriptor.
unsafe fn attr(tupdesc: pg_sys::TupleDesc, attnum: i16) -> Option<&'static pg_sys::FormData_pg_attribute> {
    let natts = (*tupdesc).natts as i16;
    if attnum < 1 || attnum > natts {
        return None;
    }
    attr_ptr(tupdesc, (attnum - 1) as usize).as_ref()
}

/// `i` is 0-based. PostgreSQL 18 moved the full attributes behind the compact ones.
#[cfg(not(feature = "pg18"))]
unsafe fn attr_ptr(tupdesc: pg_sys::TupleDesc, i: usize) -> *const pg_sys::FormData_pg_attribute {
    (*tupdesc).attrs.as_ptr().add(i)
}

#[cfg(feature = "pg18")]
unsafe fn attr_ptr(tupdesc: pg_sys::TupleDesc, i: usize) -> *const pg_sys::FormData_pg_attribute {
    pg_sys::TupleDescAttr(tupdesc, i as i32)
}

/// # Safety
/// `tupdesc` must be a valid tuple descriptor.
unsafe fn matches(tupdesc: pg_sys::TupleDesc, attnum: i16, name: &str) -> Option<Column> {
    let a = attr(tupdesc, attnum)?;
    if a.attisdropped {
        return None;
    }
    let attname = CStr::from_ptr(a.attname.data.as_ptr());
    (attname.to_bytes() == name.as_bytes()).then_some(Column {
        attnum,
        type_oid: a.atttypid,
        by_value: a.attbyval,
        len: a.attlen,
    })
}

/// Find column `name` of relation `relid`, whose current descriptor is `tupdesc`.
///
/// # Safety
/// `tupdesc` must be the valid tuple descriptor of `relid`.
pub unsafe fn find(relid: pg_sys::Oid, tupdesc: pg_sys::TupleDesc, name: &str) -> Option<Column> {
    let cached = CACHE.with(|c| {
        c.borrow().get(&relid).and_then(|cols| cols.iter().find(|(n, _)| &**n == name).map(|(_, a)| *a))
    });
    if let Some(attnum) = cached {
        if let Some(col) = matches(tupdesc, attnum, name) {
            return Some(col);
        }
    }
    let natts = (*tupdesc).natts as i16;
    let found = (1..=natts).find_map(|n| matches(tupdesc, n, name))?;
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let cols = c.entry(relid).or_default();
        cols.retain(|(n, _)| &**n != name);
        cols.push((name.into(), found.attnum));
    });
    Some(found)
}
