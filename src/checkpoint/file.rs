//! One shard's state file: a fixed header, a table of sections, then the sections' bytes (docs/checkpoints.md,
//! "File layout").
//!
//! Every byte of a valid file is covered by a CRC32C (the header's, the table's or its section's) or must be
//! zero (padding), and the layout is canonical (each section starts at the first 8-byte boundary after the one
//! before it), so any damaged byte makes [`StateFile::open`] fail, and a file that opens is exactly what
//! [`write_state_file`] writes for its header and sections. Sections are read in place from a read-only map
//! of the file: 8-byte aligned in the file, so 8-byte aligned in memory.

use super::CheckpointError;
use memmap2::{Mmap, MmapMut};
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

/// The first 8 bytes of every state file.
pub const MAGIC: [u8; 8] = *b"TLSTATE\0";
/// The format version this build writes and reads.
/// 2: window operators record what they aggregate (`value`).
pub const VERSION: u16 = 2;
/// Bytes in the header.
pub const HEADER_LEN: usize = 64;
/// Bytes in one entry of the section table.
pub const ENTRY_LEN: usize = 32;
/// Alignment of every section in the file.
pub const ALIGN: u64 = 8;

// Header fields (offsets in the file).
const H_VERSION: usize = 8;
const H_RESERVED: usize = 10;
const H_HEADER_LEN: usize = 12;
const H_ID: usize = 16;
const H_SHARD: usize = 24;
const H_SHARDS: usize = 28;
const H_CREATED: usize = 32;
const H_COUNT: usize = 40;
const H_RESERVED2: usize = 44;
const H_FILE_LEN: usize = 48;
const H_TABLE_CRC: usize = 56;
const H_CRC: usize = 60;

// Section table entry fields (offsets in the entry).
const E_KIND: usize = 0;
const E_ID: usize = 4;
const E_OFFSET: usize = 8;
const E_LEN: usize = 16;
const E_CRC: usize = 24;
const E_RESERVED: usize = 28;

/// What a state file says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateHeader {
    pub checkpoint_id: u64,
    /// This file holds the keys whose `hash % shards == shard`.
    pub shard: u32,
    pub shards: u32,
    /// Wall clock when the checkpoint was taken, ns since the Unix epoch.
    pub created_ns: i64,
}

/// One section of a state file: opaque bytes named by a kind and an id (e.g. an operator's index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section<'a> {
    pub kind: u32,
    pub id: u32,
    pub bytes: &'a [u8],
}

/// A section read from a [`StateFile`], its bytes borrowed from the file's map.
pub type SectionRef<'a> = Section<'a>;

/// The `shard` of a file holding state of the whole pipeline rather than of one shard (the sources'
/// positions and the symbol table).
pub const PIPELINE_WIDE: u32 = u32::MAX;

/// Writes one shard's state file: to `<path>.tmp` through a writable map, flushed (`msync`) and `fsync`ed,
/// then renamed to `path`. Returns the file's size.
///
/// The rename makes the file appear whole or not at all; making the rename itself durable is left to the
/// `fsync` of the directory that follows the manifest ([`super::manifest::write_manifest`]). Sections must
/// have distinct `(kind, id)` pairs.
pub fn write_state_file(path: &Path, header: &StateHeader, sections: &[Section<'_>]) -> Result<u64, CheckpointError> {
    let invalid = |reason: String| CheckpointError::InvalidState { path: path.to_path_buf(), reason };
    if header.shard >= header.shards && header.shard != PIPELINE_WIDE {
        return Err(invalid(format!("shard {} is not below the shard count {}", header.shard, header.shards)));
    }
    let count = u32::try_from(sections.len()).map_err(|_| invalid(format!("{} sections", sections.len())))?;
    let mut seen = HashSet::with_capacity(sections.len());
    for s in sections {
        if !seen.insert((s.kind, s.id)) {
            return Err(invalid(format!("two sections of kind {} with id {}", s.kind, s.id)));
        }
    }
    let offsets = layout(sections.iter().map(|s| s.bytes.len() as u64))
        .ok_or_else(|| invalid("the sections' total size overflows".into()))?;
    let total = *offsets.last().unwrap_or(&table_end(count));
    // The whole file is mapped at once.
    usize::try_from(total).map_err(|_| invalid(format!("{total} bytes do not fit in the address space")))?;

    let tmp = tmp_path(path);
    let result = write_mapped(&tmp, total, |buf| fill(buf, header, sections, &offsets, total))
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| CheckpointError::io(path, e)))
        .map(|()| super::crash_point("renaming a state file"));
    if result.is_err() {
        // Best effort: a leftover .tmp is harmless (never read, overwritten by the next attempt).
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| total)
}

/// Where a file is written before the rename that publishes it: next to it, so the rename stays within one
/// file system and is atomic.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

fn write_mapped(tmp: &Path, len: u64, fill: impl FnOnce(&mut [u8])) -> Result<(), CheckpointError> {
    let io = |e| CheckpointError::io(tmp, e);
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(tmp).map_err(io)?;
    file.set_len(len).map_err(io)?;
    // Reserve the blocks now: a sparse file on a full disk would fault with SIGBUS in the copy below and
    // kill the process; reserved, a full disk is an ENOSPC here, which fails this checkpoint only.
    preallocate(&file, len).map_err(io)?;
    super::crash_point("creating a state file");
    // SAFETY: the map is of a file this call has just created and truncated under a `.tmp` name in the
    // checkpoint directory, which is private to this process; nothing else opens it before the rename below,
    // so no other mapping or writer aliases the bytes while the `&mut [u8]` lives. A concurrent truncation
    // by another process is outside that contract.
    let mut map = unsafe { MmapMut::map_mut(&file) }.map_err(io)?;
    fill(&mut map[..]);
    map.flush().map_err(io)?;
    super::crash_point("writing a state file");
    drop(map);
    file.sync_all().map_err(io)?;
    super::crash_point("syncing a state file");
    Ok(())
}

#[cfg(target_os = "linux")]
fn preallocate(file: &File, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(len).map_err(|_| std::io::Error::other("state file too large"))?;
    // SAFETY: `posix_fallocate` only reads the descriptor number and two integers; the descriptor belongs to
    // `file`, which is open for writing and outlives the call.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) } {
        0 => Ok(()),
        code => Err(std::io::Error::from_raw_os_error(code)),
    }
}

#[cfg(not(target_os = "linux"))]
fn preallocate(_file: &File, _len: u64) -> std::io::Result<()> {
    Ok(())
}

/// Offset of the first byte after a table of `count` entries (a multiple of 8).
fn table_end(count: u32) -> u64 {
    HEADER_LEN as u64 + ENTRY_LEN as u64 * count as u64
}

fn align_up(n: u64) -> Option<u64> {
    Some(n.checked_add(ALIGN - 1)? & !(ALIGN - 1))
}

/// The canonical offset of each section, then the file length: each section starts at the first 8-byte
/// boundary after the previous one (the first after the table), and the file ends at the boundary after
/// the last. `None` on overflow.
fn layout(lens: impl ExactSizeIterator<Item = u64>) -> Option<Vec<u64>> {
    let count = u32::try_from(lens.len()).ok()?;
    let mut out = Vec::with_capacity(lens.len() + 1);
    let mut at = table_end(count);
    for len in lens {
        out.push(at);
        at = align_up(at.checked_add(len)?)?;
    }
    out.push(at);
    Some(out)
}

fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Writes the whole file into `buf` (exactly `total` bytes, laid out by `offsets`), every byte of it,
/// padding included, so the result does not depend on what `buf` held.
fn fill(buf: &mut [u8], header: &StateHeader, sections: &[Section<'_>], offsets: &[u64], total: u64) {
    let count = sections.len() as u32;
    let table = table_end(count) as usize;
    buf[..table].fill(0);
    for (i, (s, &off)) in sections.iter().zip(offsets).enumerate() {
        let e = HEADER_LEN + i * ENTRY_LEN;
        put_u32(buf, e + E_KIND, s.kind);
        put_u32(buf, e + E_ID, s.id);
        put_u64(buf, e + E_OFFSET, off);
        put_u64(buf, e + E_LEN, s.bytes.len() as u64);
        put_u32(buf, e + E_CRC, crc32c::crc32c(s.bytes));
        let start = off as usize;
        let end = start + s.bytes.len();
        buf[start..end].copy_from_slice(s.bytes);
        let next = offsets.get(i + 1).map_or(total, |&n| n) as usize;
        buf[end..next].fill(0);
    }

    let h = &mut buf[..HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    put_u16(h, H_VERSION, VERSION);
    put_u32(h, H_HEADER_LEN, HEADER_LEN as u32);
    put_u64(h, H_ID, header.checkpoint_id);
    put_u32(h, H_SHARD, header.shard);
    put_u32(h, H_SHARDS, header.shards);
    put_u64(h, H_CREATED, header.created_ns as u64);
    put_u32(h, H_COUNT, count);
    put_u64(h, H_FILE_LEN, total);
    let table_crc = crc32c::crc32c(&buf[HEADER_LEN..table]);
    put_u32(buf, H_TABLE_CRC, table_crc);
    let crc = header_crc(&buf[..HEADER_LEN]);
    put_u32(buf, H_CRC, crc);
}

/// CRC32C of a header with its CRC field read as zero.
fn header_crc(h: &[u8]) -> u32 {
    let head = h.get(..H_CRC).unwrap_or(h);
    crc32c::crc32c_append(crc32c::crc32c(head), &[0; 4])
}

/// `N` bytes of `b` from `at`; zeros where `b` is too short (callers have checked the length already, so
/// this never happens, but reading input bytes must not be able to panic).
fn field<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b.get(at..at.saturating_add(N)).and_then(|s| s.try_into().ok()).unwrap_or([0; N])
}

fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(field(b, at))
}

fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(field(b, at))
}

fn get_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(field(b, at))
}

/// A section's place in the file, checked to lie inside it.
#[derive(Debug, Clone, Copy)]
struct Entry {
    kind: u32,
    id: u32,
    start: usize,
    end: usize,
}

/// A state file, verified and mapped read-only; sections are borrowed from the map.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    map: Mmap,
    header: StateHeader,
    entries: Vec<Entry>,
}

impl StateFile {
    /// Maps `path` and verifies all of it: magic, version, header CRC, that the table and every section lie
    /// inside the file at their canonical offsets, the table's CRC, zero padding and every section's CRC.
    pub fn open(path: &Path) -> Result<StateFile, CheckpointError> {
        let io = |e| CheckpointError::io(path, e);
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < HEADER_LEN as u64 {
            // Too short to hold a header: not mapped (an empty map is an error on some platforms).
            let bytes = fs::read(path).map_err(io)?;
            return Err(short_file(path, &bytes));
        }
        // SAFETY: a state file lives in its checkpoint directory, which is private to ticklane, and is
        // written once under a `.tmp` name and only then renamed into place; it is never modified after, so
        // the mapped bytes do not change while the map (and every slice borrowed from it) lives. A
        // concurrent truncation or rewrite by another process is outside that contract.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        let (header, entries) = parse(path, &map)?;
        Ok(StateFile { path: path.to_path_buf(), map, header, entries })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn header(&self) -> &StateHeader {
        &self.header
    }

    /// The sections in file order.
    pub fn sections(&self) -> impl ExactSizeIterator<Item = SectionRef<'_>> + '_ {
        self.entries.iter().map(|e| Section { kind: e.kind, id: e.id, bytes: self.slice(e) })
    }

    /// The bytes of the section `(kind, id)`.
    pub fn section(&self, kind: u32, id: u32) -> Option<&[u8]> {
        self.entries.iter().find(|e| e.kind == kind && e.id == id).map(|e| self.slice(e))
    }

    /// The file's size in bytes.
    pub fn file_len(&self) -> u64 {
        self.map.len() as u64
    }

    /// CRC32C of the whole file (as a manifest records it).
    pub fn crc32c(&self) -> u32 {
        crc32c::crc32c(&self.map)
    }

    fn slice(&self, e: &Entry) -> &[u8] {
        self.map.get(e.start..e.end).unwrap_or(&[])
    }
}

/// The error for a file shorter than a header: not ours if its first bytes are not the magic.
fn short_file(path: &Path, b: &[u8]) -> CheckpointError {
    let n = b.len().min(MAGIC.len());
    if b[..n] != MAGIC[..n] {
        let mut found = [0; 8];
        found[..n].copy_from_slice(&b[..n]);
        return CheckpointError::BadMagic { path: path.to_path_buf(), expected: MAGIC, found };
    }
    CheckpointError::Truncated {
        path: path.to_path_buf(),
        what: "header".into(),
        offset: 0,
        expected: HEADER_LEN as u64,
        found: b.len() as u64,
    }
}

fn parse(path: &Path, b: &[u8]) -> Result<(StateHeader, Vec<Entry>), CheckpointError> {
    let p = || path.to_path_buf();
    let malformed = |offset: u64, reason: String| CheckpointError::Malformed { path: p(), offset, reason };
    let len = b.len() as u64;
    let Some(h) = b.get(..HEADER_LEN) else { return Err(short_file(path, b)) };

    let magic: [u8; 8] = field(h, 0);
    if magic != MAGIC {
        return Err(CheckpointError::BadMagic { path: p(), expected: MAGIC, found: magic });
    }
    let version = get_u16(h, H_VERSION);
    if version != VERSION {
        return Err(CheckpointError::UnsupportedVersion { path: p(), found: version, supported: VERSION });
    }
    let (stored, computed) = (get_u32(h, H_CRC), header_crc(h));
    if stored != computed {
        return Err(CheckpointError::ChecksumMismatch {
            path: p(),
            what: "header".into(),
            offset: 0,
            expected: stored,
            found: computed,
        });
    }
    // The header is intact from here on: what is wrong with it was written so.
    for (at, v) in [(H_RESERVED, get_u16(h, H_RESERVED) as u32), (H_RESERVED2, get_u32(h, H_RESERVED2))] {
        if v != 0 {
            return Err(malformed(at as u64, format!("reserved field is {v:#x}, not 0")));
        }
    }
    let header_len = get_u32(h, H_HEADER_LEN);
    if header_len as usize != HEADER_LEN {
        return Err(malformed(H_HEADER_LEN as u64, format!("header length {header_len}, expected {HEADER_LEN}")));
    }
    let header = StateHeader {
        checkpoint_id: get_u64(h, H_ID),
        shard: get_u32(h, H_SHARD),
        shards: get_u32(h, H_SHARDS),
        created_ns: get_u64(h, H_CREATED) as i64,
    };
    if header.shard >= header.shards && header.shard != PIPELINE_WIDE {
        return Err(malformed(
            H_SHARD as u64,
            format!("shard {} is not below the shard count {}", header.shard, header.shards),
        ));
    }
    let file_len = get_u64(h, H_FILE_LEN);
    if len < file_len {
        return Err(CheckpointError::Truncated {
            path: p(),
            what: "file (length recorded in the header)".into(),
            offset: len,
            expected: file_len,
            found: len,
        });
    }
    if len > file_len {
        return Err(malformed(file_len, format!("{} bytes after the end recorded in the header", len - file_len)));
    }

    let count = get_u32(h, H_COUNT);
    let table = table_end(count);
    if table > len {
        return Err(CheckpointError::Truncated {
            path: p(),
            what: format!("section table of {count} entries"),
            offset: HEADER_LEN as u64,
            expected: table,
            found: len,
        });
    }
    // `table <= len`, and `len` is the length of a slice: the casts to usize below cannot truncate.
    let table_bytes = b.get(HEADER_LEN..table as usize).unwrap_or(&[]);
    let (stored, computed) = (get_u32(h, H_TABLE_CRC), crc32c::crc32c(table_bytes));
    if stored != computed {
        return Err(CheckpointError::ChecksumMismatch {
            path: p(),
            what: "section table".into(),
            offset: HEADER_LEN as u64,
            expected: stored,
            found: computed,
        });
    }

    let mut entries = Vec::with_capacity(count as usize);
    let mut seen = HashSet::with_capacity(count as usize);
    let mut end = table; // end of the previous section's bytes
    for (i, e) in table_bytes.chunks_exact(ENTRY_LEN).enumerate() {
        let at = (HEADER_LEN + i * ENTRY_LEN) as u64;
        let (kind, id) = (get_u32(e, E_KIND), get_u32(e, E_ID));
        let name = format!("section {i} (kind {kind}, id {id})");
        let reserved = get_u32(e, E_RESERVED);
        if reserved != 0 {
            return Err(malformed(at + E_RESERVED as u64, format!("{name}: reserved field is {reserved:#x}, not 0")));
        }
        if !seen.insert((kind, id)) {
            return Err(malformed(at, format!("{name} appears twice")));
        }
        let (offset, size) = (get_u64(e, E_OFFSET), get_u64(e, E_LEN));
        let expected = align_up(end).unwrap_or(u64::MAX);
        if offset != expected {
            return Err(malformed(
                at + E_OFFSET as u64,
                format!(
                    "{name} starts at {offset}, expected {expected} (the 8-byte boundary after the previous section)"
                ),
            ));
        }
        check_padding(path, b, end, offset)?;
        let stop = match offset.checked_add(size) {
            Some(s) if s <= len => s,
            _ => {
                return Err(CheckpointError::Truncated {
                    path: p(),
                    what: format!("{name} of {size} bytes"),
                    offset,
                    expected: offset.saturating_add(size),
                    found: len,
                })
            }
        };
        let bytes = b.get(offset as usize..stop as usize).unwrap_or(&[]);
        let (stored, computed) = (get_u32(e, E_CRC), crc32c::crc32c(bytes));
        if stored != computed {
            return Err(CheckpointError::ChecksumMismatch {
                path: p(),
                what: name,
                offset,
                expected: stored,
                found: computed,
            });
        }
        entries.push(Entry { kind, id, start: offset as usize, end: stop as usize });
        end = stop;
    }
    let expected = align_up(end).unwrap_or(u64::MAX);
    if file_len != expected {
        return Err(malformed(
            H_FILE_LEN as u64,
            format!("file length {file_len} in the header, but the sections end at {end} (padded: {expected})"),
        ));
    }
    check_padding(path, b, end, file_len)?;
    Ok((header, entries))
}

/// Padding is not checksummed: it must be zero, so a damaged padding byte is found too.
fn check_padding(path: &Path, b: &[u8], from: u64, to: u64) -> Result<(), CheckpointError> {
    let pad = b.get(from as usize..to as usize).unwrap_or(&[]);
    match pad.iter().position(|&x| x != 0) {
        None => Ok(()),
        Some(i) => Err(CheckpointError::Malformed {
            path: path.to_path_buf(),
            offset: from + i as u64,
            reason: format!("padding byte is {:#04x}, not 0", pad[i]),
        }),
    }
}
