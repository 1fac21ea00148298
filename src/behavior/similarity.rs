//! Cosine similarity and the pattern search behind `find_similar_patterns` (sql/behavior.sql).
//!
//! The search reads `behavior_patterns` natively: the caller's own patterns through the
//! `user_id` index, or (service callers without `p_user_id`) the whole table in one sequential
//! scan. Each embedding is read where it lies on its buffer page (STORAGE MAIN keeps it in the
//! row), dotted with the query by the SIMD kernel and divided by the norms (the pattern's was
//! kept at write time); the best `match_count` stay in a bounded heap.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::embedding;
use super::kernel;
use crate::common::columns;
use crate::common::error::{require_arg, PgaError, INSUFFICIENT_PRIVILEGE};
use crate::common::owner::may_write_protected_columns;
use crate::common::schema;
use crate::identity::current_user_uuid;

pub const MAX_MATCH_COUNT: i32 = 1000;

fn query_arg(array: Option<pgrx::Array<'_, f32>>, name: &str) -> embedding::Scaled {
    let array = require_arg(array, name);
    // SAFETY: pgrx detoasted the argument; its memory lives for the call.
    let values = unsafe { embedding::elements(array.into_array_type() as *const pg_sys::varlena) };
    match values.and_then(|v| embedding::validate(v).map(|()| embedding::scaled(v))) {
        Ok(q) => q,
        Err(e) => e.raise(name),
    }
}

/// Stored norms outside this range take the double-precision path (no single-precision sum of
/// their products could be trusted); real embeddings are never there.
const SAFE_NORMS: std::ops::RangeInclusive<f64> = 1e-30..=1e30;

/// The cosine similarity of the scaled query and an embedding whose kept norm is `norm`.
fn cosine(query: &embedding::Scaled, values: &[f32], norm: f64) -> f64 {
    let mut dot = kernel::dot(&query.values, values) as f64;
    if !dot.is_finite() || !SAFE_NORMS.contains(&norm) {
        dot = query.values.iter().zip(values).map(|(&q, &v)| q as f64 * v as f64).sum();
    }
    (dot / (query.norm * norm)).clamp(-1.0, 1.0)
}

/// Cosine similarity of two embeddings of the same dimension (`22023` otherwise, and for
/// empty, multi-dimensional, all-zero or non-finite vectors and NULL elements).
#[pg_extern(immutable, strict, parallel_safe)]
fn cosine_similarity(a: pgrx::Array<'_, f32>, b: pgrx::Array<'_, f32>) -> f64 {
    // SAFETY: pgrx detoasted the arguments; their memory lives for the call.
    let (va, vb) = unsafe {
        (
            embedding::elements(a.into_array_type() as *const pg_sys::varlena),
            embedding::elements(b.into_array_type() as *const pg_sys::varlena),
        )
    };
    let va = va.unwrap_or_else(|e| e.raise("vector a"));
    let vb = vb.unwrap_or_else(|e| e.raise("vector b"));
    if va.len() != vb.len() {
        // Each argument's own fault first, then the pair's.
        embedding::validate(va).unwrap_or_else(|e| e.raise("vector a"));
        embedding::validate(vb).unwrap_or_else(|e| e.raise("vector b"));
        PgaError::invalid("cosine_similarity needs vectors of the same dimension")
            .detail(format!("Vector a has {} elements, vector b has {}.", va.len(), vb.len()))
            .raise();
    }
    // Three single-precision dot products; only when one is not finite or a norm is out of the
    // safe range (a NaN, infinite or zero element, or extreme magnitudes) is the vector checked
    // element by element and the product taken on the scaled vectors.
    let (ab, aa, bb) = (kernel::dot(va, vb) as f64, kernel::dot(va, va) as f64, kernel::dot(vb, vb) as f64);
    let safe = |n: f64| n.is_finite() && (1e-30..=1e30).contains(&n);
    if ab.is_finite() && safe(aa) && safe(bb) {
        return (ab / (aa.sqrt() * bb.sqrt())).clamp(-1.0, 1.0);
    }
    embedding::validate(va).unwrap_or_else(|e| e.raise("vector a"));
    embedding::validate(vb).unwrap_or_else(|e| e.raise("vector b"));
    cosine(&embedding::scaled(va), vb, embedding::kept_norm(vb))
}

/// The SIMD kernel this server's CPU runs (`avx2+fma` or `portable`).
#[pg_extern(immutable, parallel_safe, name = "similarity_kernel")]
fn similarity_kernel_name() -> &'static str {
    kernel::kernel_name()
}

#[derive(PartialEq)]
struct Candidate {
    similarity: f64,
    id: [u8; 16],
}

impl Eq for Candidate {}

/// Better candidates sort first: higher similarity, then the smaller id. The heap's top is
/// the worst candidate kept.
impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        other.similarity.total_cmp(&self.similarity).then_with(|| self.id.cmp(&other.id))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Keeps the best `k` candidates seen.
struct TopK {
    k: usize,
    heap: BinaryHeap<Candidate>,
}

impl TopK {
    fn offer(&mut self, similarity: f64, id: impl FnOnce() -> [u8; 16]) {
        if self.heap.len() < self.k {
            self.heap.push(Candidate { similarity, id: id() });
            return;
        }
        let worst = self.heap.peek().map(|w| w.similarity).unwrap_or(f64::NEG_INFINITY);
        if similarity < worst {
            return;
        }
        let c = Candidate { similarity, id: id() };
        if self.heap.peek().is_some_and(|w| c < *w) {
            self.heap.pop();
            self.heap.push(c);
        }
    }

    fn into_sorted(self) -> Vec<Candidate> {
        self.heap.into_sorted_vec()
    }
}

/// The `match_count` patterns most similar to `query_embedding` that the caller may see, best
/// first: `(id, similarity)`. `find_similar_patterns` joins the rows to it.
#[pg_extern(stable, parallel_unsafe, name = "_similar_patterns")]
fn similar_patterns(
    query_embedding: Option<pgrx::Array<'_, f32>>,
    match_threshold: Option<f64>,
    match_count: Option<i32>,
    p_user_id: Option<pgrx::Uuid>,
) -> TableIterator<'static, (name!(id, pgrx::Uuid), name!(similarity, f64))> {
    let query = query_arg(query_embedding, "query_embedding");
    let threshold = require_arg(match_threshold, "match_threshold");
    if !(-1.0..=1.0).contains(&threshold) {
        PgaError::invalid("match_threshold must be between -1 and 1")
            .detail(format!("match_threshold was {threshold}."))
            .raise();
    }
    let count = require_arg(match_count, "match_count");
    if !(1..=MAX_MATCH_COUNT).contains(&count) {
        PgaError::invalid(format!("match_count must be between 1 and {MAX_MATCH_COUNT}"))
            .detail(format!("match_count was {count}."))
            .raise();
    }
    let Some(relid) = schema::relation(c"behavior_patterns") else { return TableIterator::new(Vec::new()) };
    // SAFETY: an ACL check of the current user on the extension's table.
    if unsafe { pg_sys::pg_class_aclcheck(relid, pg_sys::GetUserId(), pg_sys::ACL_SELECT as pg_sys::AclMode) }
        != pg_sys::AclResult::ACLCHECK_OK
    {
        PgaError::new(INSUFFICIENT_PRIVILEGE, "permission denied for table behavior_patterns").raise();
    }
    // Who the search may read: a service caller anyone's (or everyone's), anyone else only
    // their own, and nothing at all when they ask for another user or have no identity.
    let user = if may_write_protected_columns() {
        p_user_id
    } else {
        match (current_user_uuid(), p_user_id) {
            (Some(me), None) => Some(me),
            (Some(me), Some(asked)) if asked == me => Some(me),
            _ => return TableIterator::new(Vec::new()),
        }
    };
    let mut top = TopK { k: count as usize, heap: BinaryHeap::with_capacity(count as usize + 1) };
    // SAFETY: see scan().
    unsafe { scan(relid, user, &query, threshold, &mut top) };
    let rows: Vec<_> = top.into_sorted().into_iter().map(|c| (pgrx::Uuid::from_bytes(c.id), c.similarity)).collect();
    TableIterator::new(rows)
}

/// Reads every visible pattern (of `user`, through its index, when given) and offers each
/// whose embedding has the query's dimension to `top`.
///
/// # Safety
/// Called inside a function call of a running statement (an active snapshot exists).
unsafe fn scan(relid: pg_sys::Oid, user: Option<pgrx::Uuid>, query: &embedding::Scaled, threshold: f64, top: &mut TopK) {
    let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
    let rel = pg_sys::table_open(relid, lock);
    let tupdesc = (*rel).rd_att;
    let (Some(id_col), Some(emb_col), Some(norm_col)) = (
        columns::find(relid, tupdesc, "id"),
        columns::find(relid, tupdesc, "trigger_embedding"),
        columns::find(relid, tupdesc, "trigger_embedding_norm"),
    ) else {
        pg_sys::table_close(rel, lock);
        return;
    };
    let last = id_col.attnum.max(emb_col.attnum).max(norm_col.attnum) as i32;
    let snapshot = pg_sys::GetActiveSnapshot();
    let slot = pg_sys::table_slot_create(rel, std::ptr::null_mut());
    let dims = query.values.len();
    let mut visit = |slot: *mut pg_sys::TupleTableSlot| {
        pg_sys::slot_getsomeattrs_int(slot, last);
        let values = (*slot).tts_values;
        let nulls = (*slot).tts_isnull;
        let at = |col: columns::Column| col.attnum as usize - 1;
        if *nulls.add(at(emb_col)) || *nulls.add(at(norm_col)) {
            return;
        }
        let norm = f64::from_bits((*values.add(at(norm_col))).value() as u64);
        let datum = *values.add(at(emb_col));
        let ptr = datum.cast_mut_ptr::<pg_sys::varlena>();
        let copy = embedding::needs_detoast(ptr);
        let ptr = if copy { pg_sys::pg_detoast_datum(ptr) } else { ptr };
        if let Ok(values) = embedding::elements::<'_>(ptr) {
            if values.len() == dims && norm > 0.0 {
                let similarity = cosine(query, values, norm);
                if similarity >= threshold {
                    top.offer(similarity, || {
                        let id = (*(*slot).tts_values.add(at(id_col))).cast_mut_ptr::<[u8; 16]>();
                        *id
                    });
                }
            }
        }
        if copy {
            pg_sys::pfree(ptr.cast());
        }
    };
    let mut seen: u32 = 0;
    match user {
        Some(user) => {
            let Some(indexid) = schema::relation(c"behavior_patterns_user_id_idx") else {
                pg_sys::ExecDropSingleTupleTableSlot(slot);
                pg_sys::table_close(rel, lock);
                return;
            };
            let idx = pg_sys::index_open(indexid, lock);
            let mut skey = pg_sys::ScanKeyData::default();
            pg_sys::ScanKeyInit(
                &mut skey,
                1,
                pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber,
                pg_sys::RegProcedure::from(pg_sys::F_UUID_EQ),
                pg_sys::Datum::from(user.as_bytes().as_ptr()),
            );
            let scan = begin_index_scan(rel, idx, snapshot);
            pg_sys::index_rescan(scan, &mut skey, 1, std::ptr::null_mut(), 0);
            while pg_sys::index_getnext_slot(scan, pg_sys::ScanDirection::ForwardScanDirection, slot) {
                visit(slot);
                seen = seen.wrapping_add(1);
                if seen % 1024 == 0 {
                    pg_sys::check_for_interrupts!();
                }
            }
            pg_sys::index_endscan(scan);
            pg_sys::index_close(idx, pg_sys::NoLock as pg_sys::LOCKMODE);
        }
        None => {
            let flags = pg_sys::ScanOptions::SO_TYPE_SEQSCAN
                | pg_sys::ScanOptions::SO_ALLOW_STRAT
                | pg_sys::ScanOptions::SO_ALLOW_SYNC
                | pg_sys::ScanOptions::SO_ALLOW_PAGEMODE;
            let scan = pg_sys::heap_beginscan(rel, snapshot, 0, std::ptr::null_mut(), std::ptr::null_mut(), flags);
            while pg_sys::heap_getnextslot(scan, pg_sys::ScanDirection::ForwardScanDirection, slot) {
                visit(slot);
                seen = seen.wrapping_add(1);
                if seen % 1024 == 0 {
                    pg_sys::check_for_interrupts!();
                }
            }
            pg_sys::heap_endscan(scan);
        }
    }
    pg_sys::ExecDropSingleTupleTableSlot(slot);
    pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
}

#[cfg(not(feature = "pg18"))]
unsafe fn begin_index_scan(rel: pg_sys::Relation, idx: pg_sys::Relation, snapshot: pg_sys::Snapshot) -> pg_sys::IndexScanDesc {
    pg_sys::index_beginscan(rel, idx, snapshot, 1, 0)
}

#[cfg(feature = "pg18")]
unsafe fn begin_index_scan(rel: pg_sys::Relation, idx: pg_sys::Relation, snapshot: pg_sys::Snapshot) -> pg_sys::IndexScanDesc {
    pg_sys::index_beginscan(rel, idx, snapshot, std::ptr::null_mut(), 1, 0)
}

