//! The length-framed decoders (`LengthPrefixed`, `BazelProto`, `JsonRpc`) against headers
//! that declare far more than arrives: a header declaring 16 MiB followed by 10 bytes
//! costs about 10 bytes, however the bytes are chunked; and lengths near `u64::MAX` /
//! `usize::MAX` (and past them) are errors or plain waits, never wraps, panics or large
//! allocations.
//!
//! `tests/decoders.rs` checks the capacity of the buffer the bytes arrive in, which is only
//! one place memory could go: a decoder could just as well reserve the declared length in
//! a buffer of its own, or build a `Vec` for it. So this test binary installs a counting
//! global allocator and measures every byte the heap hands out while the decoder runs.

// A `GlobalAlloc` impl cannot be written without `unsafe`; it lives only in this test
// binary, and does nothing but forward to `System` and count.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::BytesMut;
use subprocess_pool::Protocol;
use subprocess_pool::protocol::{BazelProto, JsonRpc, LengthPrefixed, ProtocolError};
use tokio_util::codec::Decoder;

/// `System`, counting the bytes allocated on threads that asked for it.
struct Counting;

thread_local! {
    /// `Some(bytes allocated so far)` while this thread counts, `None` otherwise.
    /// Const-initialized and without a destructor, so reading it never allocates.
    static COUNTED: Cell<Option<usize>> = const { Cell::new(None) };
}

fn count(bytes: usize) {
    // `try_with`: during thread teardown the local may be gone; nothing is counted then.
    let _ = COUNTED.try_with(|counted| {
        if let Some(so_far) = counted.get() {
            counted.set(Some(so_far.saturating_add(bytes)));
        }
    });
}

// SAFETY: every method forwards its arguments unchanged to `System`, so `System`'s
// guarantees are this allocator's; counting touches only a const-initialized thread-local
// and neither allocates nor panics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (every allocation here is) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size.saturating_sub(layout.size()));
        // SAFETY: as for `dealloc`, and the caller upholds `realloc`'s size contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The bytes allocated on this thread while `f` runs (growth only: frees are not
/// subtracted, and a `realloc` counts what it adds).
fn allocated_while(f: impl FnOnce()) -> usize {
    COUNTED.with(|counted| counted.set(Some(0)));
    f();
    COUNTED.with(|counted| counted.take()).unwrap_or(0)
}

/// What a header declares in the main test: 16 MiB.
const DECLARED: usize = 16 * 1024 * 1024;

/// What follows it.
const PAYLOAD: &[u8] = b"0123456789";

/// The most a decoder may allocate on this input: room for a short error message, orders
/// of magnitude below any declared length here.
const BOUND: usize = 4 * 1024;

/// How a run of decodes ended. (The decoded item itself is never expected here.)
#[derive(Debug)]
enum Outcome {
    Waiting,
    Decoded,
    Failed(String),
}

/// One run: what the decoder answered, the bytes allocated meanwhile, and the most bytes
/// the buffer held at once.
struct Run {
    outcome: Outcome,
    allocated: usize,
    peak: usize,
}

/// Feeds `wire` to `decoder` in chunks of `chunk` bytes, decoding after each, until it
/// answers anything but "waiting"; counts the bytes allocated meanwhile. The decoder and
/// a buffer of `capacity` bytes are made before counting starts: with room for all of
/// `wire`, what is counted is the decoder's own allocation; with 0 (which allocates
/// nothing) the buffer's growth is counted too.
fn feed_counting<D>(mut decoder: D, wire: &[u8], chunk: usize, capacity: usize) -> Run
where
    D: Decoder<Error = ProtocolError>,
{
    let mut buffer = BytesMut::with_capacity(capacity);
    let mut result = Ok(None);
    let mut peak = 0;
    let allocated = allocated_while(|| {
        for piece in wire.chunks(chunk) {
            buffer.extend_from_slice(piece);
            peak = peak.max(buffer.len());
            result = decoder.decode(&mut buffer);
            if !matches!(result, Ok(None)) {
                break;
            }
        }
    });
    let outcome = match result {
        Ok(None) => Outcome::Waiting,
        Ok(Some(_)) => Outcome::Decoded,
        Err(error) => Outcome::Failed(error.to_string()),
    };
    Run {
        outcome,
        allocated,
        peak,
    }
}

/// The wire formats' headers, each followed by `PAYLOAD`.
fn length_prefixed(declared: u32) -> Vec<u8> {
    [&declared.to_be_bytes()[..], PAYLOAD].concat()
}

fn varint(declared: u64) -> Vec<u8> {
    let mut wire = Vec::new();
    prost::encoding::encode_varint(declared, &mut wire);
    wire.extend_from_slice(PAYLOAD);
    wire
}

fn content_length(declared: &str) -> Vec<u8> {
    [
        format!("Content-Length: {declared}\r\n\r\n").as_bytes(),
        PAYLOAD,
    ]
    .concat()
}

/// Chunk sizes to feed `wire` in: all at once, a byte at a time, and a few in between.
fn chunkings(wire: &[u8]) -> [usize; 4] {
    [wire.len(), 1, 3, 7]
}

/// Runs `wire` through fresh decoders from `decoder`, in every chunking, with a buffer of
/// `capacity`; checks each run with `check` (which also gets the run's description) and
/// that it allocated under `BOUND`.
fn each_chunking<D: Decoder<Error = ProtocolError>>(
    name: &str,
    decoder: impl Fn() -> D,
    wire: &[u8],
    capacity: usize,
    check: impl Fn(&Run, &str),
) {
    for chunk in chunkings(wire) {
        let run = feed_counting(decoder(), wire, chunk, capacity);
        let what = format!(
            "{name}, {} bytes in chunks of {chunk}, buffer of {capacity}",
            wire.len()
        );
        eprintln!(
            "{what}: {:?}, {} bytes allocated (buffer peak {} bytes)",
            run.outcome, run.allocated, run.peak
        );
        assert!(
            run.allocated < BOUND,
            "{what}: {} bytes allocated, more than {BOUND} ({:?})",
            run.allocated,
            run.outcome
        );
        check(&run, &what);
    }
}

fn waits(run: &Run, what: &str) {
    assert!(
        matches!(run.outcome, Outcome::Waiting),
        "{what}: expected to wait, got {:?}",
        run.outcome
    );
}

fn fails(run: &Run, what: &str) {
    assert!(
        matches!(run.outcome, Outcome::Failed(_)),
        "{what}: expected an error, got {:?}",
        run.outcome
    );
}

/// An error that says the response is malformed (not merely over the limit).
fn malformed(run: &Run, what: &str) {
    assert!(
        matches!(&run.outcome, Outcome::Failed(message) if message.starts_with("malformed response")),
        "{what}: expected a malformed response, got {:?}",
        run.outcome
    );
}

/// What `tests/decoders.rs` allows with a limit of `usize::MAX`: any length is within the
/// limit, so waiting for it is fine as long as nothing wraps (an error is fine too).
fn fails_or_waits(run: &Run, what: &str) {
    assert!(
        matches!(run.outcome, Outcome::Failed(_) | Outcome::Waiting),
        "{what}: expected an error or a wait, got {:?}",
        run.outcome
    );
}

/// Every length-framed decoder, at its default limit and at `usize::MAX`, on a header
/// declaring 16 MiB followed by 10 bytes.
fn sixteen_mib_then_ten_bytes(capacity: usize, check: impl Fn(&Run, &str) + Copy) {
    let declared = u32::try_from(DECLARED).unwrap();
    for (name, limit) in [("default", None), ("usize::MAX", Some(usize::MAX))] {
        each_chunking(
            &format!("LengthPrefixed ({name})"),
            || {
                limit
                    .map_or_else(LengthPrefixed::default, LengthPrefixed::with_max_frame)
                    .codec()
            },
            &length_prefixed(declared),
            capacity,
            check,
        );
        each_chunking(
            &format!("BazelProto ({name})"),
            || {
                limit
                    .map_or_else(BazelProto::default, BazelProto::with_max_message)
                    .codec()
            },
            &varint(DECLARED as u64),
            capacity,
            check,
        );
        each_chunking(
            &format!("JsonRpc ({name})"),
            || {
                limit
                    .map_or_else(JsonRpc::default, JsonRpc::with_max_message)
                    .codec()
            },
            &content_length(&DECLARED.to_string()),
            capacity,
            check,
        );
    }
}

#[test]
fn the_counter_sees_a_reservation() {
    let mut buffer = BytesMut::new();
    let reserved = allocated_while(|| buffer.reserve(16 << 20));
    eprintln!("BytesMut::reserve(16 MiB): {reserved} bytes allocated");
    assert!(reserved >= 16 << 20, "{reserved} bytes");

    // `realloc`'s growth is counted, and `alloc_zeroed`.
    let mut grown = Vec::<u8>::with_capacity(16);
    let reallocated = allocated_while(|| grown.reserve_exact(16 << 20));
    assert!(reallocated >= (16 << 20) - 16, "{reallocated} bytes");
    let mut zeroed = Vec::new();
    let zeroed_bytes = allocated_while(|| zeroed = vec![0u8; 16 << 20]);
    assert!(zeroed_bytes >= 16 << 20, "{zeroed_bytes} bytes");

    // Nothing is counted outside `allocated_while`, nor on another thread meanwhile.
    let other = std::thread::spawn(|| allocated_while(|| drop(vec![1u8; 1 << 20])));
    let here = allocated_while(|| {});
    assert_eq!(here, 0);
    assert!(other.join().unwrap() >= 1 << 20);
}

#[test]
fn a_header_declaring_16_mib_then_10_bytes_allocates_almost_nothing() {
    // Room for the whole wire (at most 38 bytes) before counting starts: what is counted
    // is the decoder's own allocation.
    sixteen_mib_then_ten_bytes(64, waits);
}

#[test]
fn with_the_buffer_counted_too_only_the_bytes_that_arrived_are_allocated() {
    // No buffer before counting starts: its growth as the bytes arrive is counted too,
    // and must cover at least what it held (which shows the counter is watching).
    sixteen_mib_then_ten_bytes(0, |run, what| {
        waits(run, what);
        assert!(
            run.allocated >= run.peak,
            "{what}: {} bytes allocated for a buffer that held {}",
            run.allocated,
            run.peak
        );
    });
}

#[test]
fn length_prefixed_lengths_at_the_top_are_errors_or_waits() {
    // The header is 32 bits: `u32::MAX` is the largest length it can declare.
    each_chunking(
        "LengthPrefixed (default), u32::MAX",
        || LengthPrefixed::default().codec(),
        &length_prefixed(u32::MAX),
        64,
        fails,
    );
    // As `tests/decoders.rs` asserts: 4 GiB is within a limit of `usize::MAX`, so the
    // decoder waits for it (having reserved none of it).
    each_chunking(
        "LengthPrefixed (usize::MAX), u32::MAX",
        || LengthPrefixed::with_max_frame(usize::MAX).codec(),
        &length_prefixed(u32::MAX),
        64,
        waits,
    );
}

#[test]
fn bazel_varints_at_and_past_u64_max_are_errors_or_waits() {
    let top = usize::MAX as u64;
    // The varint of a length near the top is as long as that of `usize::MAX`.
    let header = prost::encoding::encoded_len_varint(top) as u64;
    let wires = [
        ("u64::MAX", varint(u64::MAX)),
        // The last length whose frame end (header + length) is `usize::MAX`, and the first
        // whose frame end would wrap.
        ("usize::MAX - header", varint(top - header)),
        ("usize::MAX - header + 1", varint(top - header + 1)),
    ];
    for (what, wire) in &wires {
        each_chunking(
            &format!("BazelProto (default), {what}"),
            || BazelProto::default().codec(),
            wire,
            64,
            fails,
        );
        each_chunking(
            &format!("BazelProto (usize::MAX), {what}"),
            || BazelProto::with_max_message(usize::MAX).codec(),
            wire,
            64,
            fails_or_waits,
        );
    }
    // Past u64: a tenth byte carrying more than u64's last bit, and a varint that never
    // ends within the 10 bytes any u64 fits in.
    let mut past_u64 = vec![0xff; 9];
    past_u64.push(0x02);
    past_u64.extend_from_slice(PAYLOAD);
    let endless = [&[0x80; 11][..], PAYLOAD].concat();
    for (what, wire) in [
        ("a varint past u64", past_u64),
        ("an endless varint", endless),
    ] {
        for limit in [
            BazelProto::default(),
            BazelProto::with_max_message(usize::MAX),
        ] {
            each_chunking(
                &format!("BazelProto ({limit:?}), {what}"),
                || limit.codec(),
                &wire,
                64,
                malformed,
            );
        }
    }
}

#[test]
fn content_lengths_at_and_past_u64_max_are_errors_or_waits() {
    let u64_max = u64::MAX.to_string();
    let past_u64 = "99999999999999999999999";
    each_chunking(
        "JsonRpc (default), u64::MAX",
        || JsonRpc::default().codec(),
        &content_length(&u64_max),
        64,
        fails,
    );
    each_chunking(
        "JsonRpc (usize::MAX), u64::MAX",
        || JsonRpc::with_max_message(usize::MAX).codec(),
        &content_length(&u64_max),
        64,
        fails_or_waits,
    );
    for limit in [JsonRpc::default(), JsonRpc::with_max_message(usize::MAX)] {
        each_chunking(
            &format!("JsonRpc ({limit:?}), past u64"),
            || limit.codec(),
            &content_length(past_u64),
            64,
            malformed,
        );
    }
}
