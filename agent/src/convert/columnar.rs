//! Column-at-a-time parsing of a block of records.
//!
//! Row by row, each record writes one value into each of its partition's column buffers: with
//! the 84 months of a typical export open at once, that is over a thousand buffers written in
//! turn, whose ends (and the buffers' own bookkeeping) no longer stay in the L1 cache. A block
//! of records ([`Block`], which holds the values of each field side by side) goes through here
//! one column at a time instead: the partition of every record first, then the values of each
//! column in record order, so that a pass reads only its column's bytes, writes to as many
//! buffers as there are partitions, keeps the column's interner in cache, and decides how to
//! parse the column once rather than once per value.
//!
//! The result is the same as row by row, value for value: the same parsing ([`fast_append`],
//! else [`parse_value`] and [`append_value`]), the same order within each partition, the same
//! partitions in the same order. What this path does not do is report errors: a block with a
//! record of the wrong shape, with text that may not be UTF-8, or with a value that does not
//! parse is undone (its partitions' buffers cut back to their committed rows) and left to the
//! row-by-row path, which says what is wrong and where. Neither does it hold back footer rows.

use super::*;

/// Records of a block at most. Each column pass starts by bringing its partitions' buffers and
/// its interner into the cache: large blocks share that cost among more values (1,024 rows
/// took about a tenth more time than 16,384 on the benchmark).
pub const BLOCK_ROWS: usize = 16 * 1024;
/// Bytes of a block at most (more only by its last record): a wide export makes blocks of fewer
/// rows, not larger blocks.
pub const BLOCK_BYTES: usize = 4 * 1024 * 1024;

/// What a block's passes keep between them (reused from block to block).
#[derive(Default)]
pub struct Scratch {
    /// The partition of each record, and its place in `touched`.
    parts: Vec<u32>,
    slots: Vec<u32>,
    /// The partition source values of each record, `slots` per record.
    pvals: Vec<Val>,
    /// Per partition: records of this block, the text bytes they add, and its place in
    /// `touched`.
    counts: Vec<usize>,
    bytes: Vec<usize>,
    slot: Vec<u32>,
    /// Partitions with records in this block, in order of first appearance.
    touched: Vec<usize>,
    /// During a pass, the column of each partition of `touched`, moved here side by side: a
    /// value is appended without going through its partition's buffer to its column.
    dense: Vec<Column>,
    /// During a pass over interned text: each value's number in the interner, or [`NULL`],
    /// [`TEXT`] (not interned), [`GENERAL`] (for the general rules).
    codes: Vec<u32>,
}

/// See [`Scratch::codes`] (interner numbers stay below `1 << 31`).
const NULL: u32 = u32::MAX;
const TEXT: u32 = u32::MAX - 1;
const GENERAL: u32 = u32::MAX - 2;

impl Parser<'_> {
    /// Parses `block` into the partition buffers a column at a time and counts its rows (true),
    /// or leaves it to the row-by-row path (false, every buffer as it was).
    pub(super) fn block(&mut self, block: &Block) -> Result<bool, ConvertError> {
        let n = block.len();
        // A one-field record may be blank (skipped row by row), a record that may not be UTF-8
        // is checked field by field: both need the row-by-row path, as does a file already
        // doomed.
        if n == 0 || self.doomed || self.width < 2 {
            return Ok(false);
        }
        if self.check_utf8 && !block.known_utf8() {
            return Ok(false);
        }
        let mut ok = self.partitions(block);
        if ok {
            for fi in 0..self.plans.len() {
                if !self.column(block, fi) {
                    ok = false;
                    break;
                }
            }
        }
        let sc = &mut self.columnar;
        if !ok {
            for &i in &sc.touched {
                self.router.parts[i].buf.rollback();
                sc.counts[i] = 0;
                sc.bytes[i] = 0;
            }
            sc.touched.clear();
            return Ok(false);
        }
        for &i in &sc.touched {
            let rows = std::mem::take(&mut sc.counts[i]);
            let bytes = std::mem::take(&mut sc.bytes[i]);
            self.router
                .rows_added(i, rows, rows * self.fixed_row_bytes + bytes);
        }
        sc.touched.clear();
        self.rows_read += n as u64;
        self.rows_written += n as u64;
        self.router.rows_counted(n)?;
        Ok(true)
    }

    /// The partition of every record of `block` (partitions added as they appear, as row by
    /// row); false when a partition source does not parse.
    fn partitions(&mut self, block: &Block) -> bool {
        let plans = self.plans;
        let n = block.len();
        self.columnar.parts.clear();
        self.columnar.slots.clear();
        self.columnar.pvals.clear();
        for r in 0..n {
            for (slot, &pi) in self.part_src.iter().enumerate() {
                let p = &plans[pi];
                let raw = block.field(r, p.src);
                // a date in its first format, when that has a fixed layout (what parse_value
                // finds first, without its cache)
                if p.ty == ColumnType::Date
                    && p.only_empty_null
                    && let Some(f) = p.formats.first()
                    && let t = parse::trim(raw)
                    && !t.is_empty()
                    && let Some(days) = f.parse_fixed_date(t)
                {
                    self.pvals[slot] = Val::Int(days.into());
                    continue;
                }
                match parse_value(
                    p,
                    raw,
                    self.numeric,
                    false,
                    &mut self.scratch,
                    &mut self.date_caches[pi],
                ) {
                    Ok(v) => self.pvals[slot] = v,
                    Err(_) => return false,
                }
            }
            let i = self.partition(|j| block.field(r, j));
            let sc = &mut self.columnar;
            sc.pvals.extend_from_slice(&self.pvals);
            if sc.counts.len() <= i {
                sc.counts.resize(i + 1, 0);
                sc.bytes.resize(i + 1, 0);
                sc.slot.resize(i + 1, 0);
            }
            if sc.counts[i] == 0 {
                sc.slot[i] = sc.touched.len() as u32;
                sc.touched.push(i);
            }
            sc.counts[i] += 1;
            sc.parts.push(i as u32);
            sc.slots.push(sc.slot[i]);
        }
        true
    }

    /// The values of field `fi` of every record of `block`, into their partitions' buffers;
    /// false when one does not parse (the caller undoes the block).
    fn column(&mut self, block: &Block, fi: usize) -> bool {
        let p = &self.plans[fi];
        let (bytes, starts) = block.column(p.src);
        let slots = self.part_src.len();
        let sc = &mut self.columnar;
        let body = p.body;
        let Some(bi) = body else {
            // not written (a dropped column): only checked
            for r in 0..block.len() {
                if p.part_slot.is_none()
                    && parse_value(
                        p,
                        &bytes[starts[r] as usize..starts[r + 1] as usize],
                        self.numeric,
                        false,
                        &mut self.scratch,
                        &mut self.date_caches[fi],
                    )
                    .is_err()
                {
                    return false;
                }
            }
            return true;
        };
        // The column of each partition of the block, side by side for the pass (moved back
        // after it, whatever happens).
        let mut dense = std::mem::take(&mut sc.dense);
        dense.extend(sc.touched.iter().map(|&i| {
            std::mem::replace(
                &mut self.router.parts[i].buf.cols[bi],
                Column::placeholder(),
            )
        }));
        let mut interner = self.router.interners[bi].as_mut();
        let ok = 'pass: {
            // The general rules for one value.
            macro_rules! general {
                ($r:expr, $raw:expr) => {{
                    let v = match p.part_slot {
                        Some(slot) => sc.pvals[$r * slots + slot],
                        None => match parse_value(
                            p,
                            $raw,
                            self.numeric,
                            false,
                            &mut self.scratch,
                            &mut self.date_caches[fi],
                        ) {
                            Ok(v) => v,
                            Err(_) => break 'pass false,
                        },
                    };
                    sc.bytes[sc.parts[$r] as usize] += append_value(
                        &mut dense[sc.slots[$r] as usize],
                        p,
                        v,
                        $raw,
                        bytes,
                        &self.ctx,
                        &mut self.text_buf,
                    );
                }};
            }
            // One pass per kind of field, so that each is compiled with its kind known.
            macro_rules! pass {
                ($f:expr) => {{
                    let f = $f;
                    for r in 0..block.len() {
                        let raw = &bytes[starts[r] as usize..starts[r + 1] as usize];
                        let col = &mut dense[sc.slots[r] as usize];
                        match fast_append(&f, bytes, raw, col, interner.as_deref_mut()) {
                            Some(n) => sc.bytes[sc.parts[r] as usize] += n,
                            None => general!(r, raw),
                        }
                    }
                }};
            }
            match self.fast[fi] {
                Fast::Text {
                    trim, empty_null, ..
                } if interner.as_ref().is_some_and(|i| i.enabled()) => {
                    // Two loops: every value's number first (the interner alone in the cache),
                    // then each into its partition's column.
                    let Some(i) = interner.as_deref_mut() else {
                        unreachable!("checked above")
                    };
                    let codes = &mut sc.codes;
                    codes.clear();
                    codes.extend((0..block.len()).map(|r| {
                        let (a, b) = (starts[r] as usize, starts[r + 1] as usize);
                        let v = parse::trim(&bytes[a..b]);
                        if v.is_empty() {
                            return if empty_null { NULL } else { GENERAL };
                        }
                        let s = if trim { trim_trimmed(v) } else { &bytes[a..b] };
                        let start = s.as_ptr() as usize - bytes.as_ptr() as usize;
                        i.intern_within(bytes, start, start + s.len())
                            .unwrap_or(TEXT)
                    }));
                    for r in 0..block.len() {
                        let col = &mut dense[sc.slots[r] as usize];
                        match sc.codes[r] {
                            NULL => col.push_null(),
                            TEXT | GENERAL => {
                                let raw = &bytes[starts[r] as usize..starts[r + 1] as usize];
                                match fast_append(&self.fast[fi], bytes, raw, col, None) {
                                    Some(n) => sc.bytes[sc.parts[r] as usize] += n,
                                    None => general!(r, raw),
                                }
                            }
                            k => col.push_id(k),
                        }
                    }
                }
                f @ Fast::Text { .. } => pass!(f),
                f @ Fast::Int { .. } => pass!(f),
                f @ Fast::Decimal { .. } => pass!(f),
                f @ Fast::Date { .. } => pass!(f),
                // A partition source (the admission date of monthly folders): its value is
                // the one `partitions` parsed, appended as append_value would without a call
                // per value.
                Fast::General if p.pii != Pii::Year && p.part_slot.is_some() => {
                    let Some(slot) = p.part_slot else {
                        unreachable!("checked above")
                    };
                    for r in 0..block.len() {
                        let col = &mut dense[sc.slots[r] as usize];
                        match sc.pvals[r * slots + slot] {
                            Val::Int(x) => col.push_i64(x),
                            Val::Null => col.push_null(),
                            _ => general!(r, &bytes[starts[r] as usize..starts[r + 1] as usize]),
                        }
                    }
                }
                Fast::General => {
                    for r in 0..block.len() {
                        general!(r, &bytes[starts[r] as usize..starts[r + 1] as usize]);
                    }
                }
            }
            true
        };
        for (c, &i) in dense.drain(..).zip(&sc.touched) {
            self.router.parts[i].buf.cols[bi] = c;
        }
        sc.dense = dense;
        ok
    }
}
