//! Every built-in decoder against hostile input: memory grows with the bytes received,
//! never with a length a header declares; lengths near `usize::MAX` are errors, not wraps;
//! and random bytes in random chunks never panic.

use bytes::BytesMut;
use proptest::prelude::*;
use subprocess_pool::Protocol;
use subprocess_pool::protocol::{
    BazelJson, BazelProto, Delimited, JsonRpc, LengthPrefixed, Lines, ProtocolError,
};
use tokio_util::codec::Decoder;

/// Feeds `chunks` one at a time into a fresh buffer, decoding after each, until the decoder
/// errs; returns the largest capacity the buffer reached and the bytes fed.
fn feed<D: Decoder<Error = ProtocolError>>(decoder: &mut D, chunks: &[Vec<u8>]) -> (usize, usize) {
    let mut buffer = BytesMut::new();
    let (mut peak, mut fed) = (0, 0);
    for chunk in chunks {
        buffer.extend_from_slice(chunk);
        fed += chunk.len();
        loop {
            match decoder.decode(&mut buffer) {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(_) => return (peak.max(buffer.capacity()), fed),
            }
        }
        peak = peak.max(buffer.capacity());
    }
    (peak, fed)
}

/// What a buffer may hold for `fed` bytes: what they need (doubling as it grows), plus a
/// little; never a declared length.
fn fair_share(fed: usize) -> usize {
    2 * fed + 1024
}

#[test]
fn a_header_declaring_16_mib_then_10_bytes_costs_about_10_bytes() {
    let declared = 16 * 1024 * 1024;
    let mut length_prefixed = (declared as u32).to_be_bytes().to_vec();
    length_prefixed.extend_from_slice(b"0123456789");
    let mut varint = Vec::new();
    prost::encoding::encode_varint(declared as u64, &mut varint);
    varint.extend_from_slice(b"0123456789");
    let json_rpc = format!("Content-Length: {declared}\r\n\r\n0123456789").into_bytes();
    let runs = [
        (
            "LengthPrefixed",
            feed(&mut LengthPrefixed::default().codec(), &[length_prefixed]),
        ),
        (
            "BazelProto",
            feed(&mut BazelProto::default().codec(), &[varint]),
        ),
        (
            "JsonRpc",
            feed(&mut JsonRpc::default().codec(), &[json_rpc]),
        ),
    ];
    for (name, (peak, fed)) in runs {
        assert!(
            peak <= fair_share(fed),
            "{name}: {peak} bytes of buffer for {fed} bytes received"
        );
    }
}

#[test]
fn lengths_near_usize_max_are_errors_not_wraps() {
    // Limits of usize::MAX: any declared length is "allowed", so only checked arithmetic
    // stands between a header and a wrap.
    let mut varint = Vec::new();
    prost::encoding::encode_varint(u64::MAX, &mut varint);
    let mut proto = BazelProto::with_max_message(usize::MAX).codec();
    let mut wire = BytesMut::from(&varint[..]);
    let outcome = proto.decode(&mut wire);
    assert!(matches!(outcome, Err(_) | Ok(None)), "{outcome:?}");
    assert!(wire.capacity() < 1024);

    let mut prefixed = LengthPrefixed::with_max_frame(usize::MAX).codec();
    let mut wire = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
    assert!(matches!(prefixed.decode(&mut wire), Ok(None)));
    assert!(wire.capacity() < 1024);

    let mut json = JsonRpc::with_max_message(usize::MAX).codec();
    let mut wire = BytesMut::from(&b"Content-Length: 18446744073709551615\r\n\r\n"[..]);
    let outcome = json.decode(&mut wire);
    assert!(matches!(outcome, Err(_) | Ok(None)), "{outcome:?}");
    assert!(wire.capacity() < 1024);
}

/// Random bytes, cut into random chunks.
fn chunks() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..32)
}

/// Random bytes biased towards what the decoders look for.
fn framed_chunks() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let piece = prop_oneof![
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"Content-Length: ".to_vec()),
        Just(b"4294967295".to_vec()),
        Just(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":null}".to_vec()),
        Just(b"END\n".to_vec()),
        Just(b"> ".to_vec()),
        Just(vec![0xff, 0xff, 0xff, 0xff]),
        Just(vec![0x80; 11]),
        prop::collection::vec(any::<u8>(), 0..16),
    ];
    prop::collection::vec(
        prop::collection::vec(piece, 0..8).prop_map(|p| p.concat()),
        0..24,
    )
}

fn every_decoder(chunks: &[Vec<u8>]) {
    let limit = 4096;
    let runs: [(&str, (usize, usize)); 9] = [
        (
            "Lines",
            feed(&mut Lines::with_max_length(limit).codec(), chunks),
        ),
        (
            "Delimited::blank_line",
            feed(
                &mut Delimited::blank_line().with_max_length(limit).codec(),
                chunks,
            ),
        ),
        (
            "Delimited::line",
            feed(
                &mut Delimited::line("END").with_max_length(limit).codec(),
                chunks,
            ),
        ),
        (
            "Delimited::prompt",
            feed(
                &mut Delimited::prompt("> ").with_max_length(limit).codec(),
                chunks,
            ),
        ),
        (
            "LengthPrefixed",
            feed(
                &mut LengthPrefixed::with_max_frame(usize::MAX).codec(),
                chunks,
            ),
        ),
        (
            "BazelJson",
            feed(&mut BazelJson::with_max_length(limit).codec(), chunks),
        ),
        (
            "BazelProto",
            feed(
                &mut BazelProto::with_max_message(usize::MAX).codec(),
                chunks,
            ),
        ),
        (
            "JsonRpc",
            feed(&mut JsonRpc::with_max_message(usize::MAX).codec(), chunks),
        ),
        (
            "JsonRpc (limited)",
            feed(&mut JsonRpc::with_max_message(limit).codec(), chunks),
        ),
    ];
    for (name, (peak, fed)) in runs {
        assert!(
            peak <= fair_share(fed),
            "{name}: {peak} bytes of buffer for {fed} bytes received"
        );
    }
}

proptest! {
    // A smoke run in CI; `PROPTEST_CASES=100000` for a longer one.
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic_nor_grow_past_what_arrived(chunks in chunks()) {
        every_decoder(&chunks);
    }

    #[test]
    fn near_frames_never_panic_nor_grow_past_what_arrived(chunks in framed_chunks()) {
        every_decoder(&chunks);
    }
}
