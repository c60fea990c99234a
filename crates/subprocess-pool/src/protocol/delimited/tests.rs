//! Unit tests of `Delimited`'s framing.
use super::*;

fn codec(delimited: Delimited) -> DelimitedFraming {
    delimited.codec()
}

/// Decodes every answer in `wire`, leaving the rest there.
fn answers(codec: &mut DelimitedFraming, wire: &mut BytesMut) -> Vec<String> {
    let mut answers = Vec::new();
    while let Some(answer) = codec.decode(wire).unwrap() {
        answers.push(answer);
    }
    answers
}

#[test]
fn a_blank_line_ends_an_answer_of_several_lines() {
    let mut codec = codec(Delimited::blank_line());
    let mut wire = BytesMut::from(&b"first\nsecond\nthird\n\n"[..]);
    assert_eq!(
        codec.decode(&mut wire).unwrap().as_deref(),
        Some("first\nsecond\nthird")
    );
    assert!(wire.is_empty());
    assert_eq!(codec.decode(&mut wire).unwrap(), None);
}

#[test]
fn a_blank_line_alone_is_an_empty_answer() {
    let mut codec = codec(Delimited::blank_line());
    let mut wire = BytesMut::from(&b"\n\r\n"[..]);
    assert_eq!(answers(&mut codec, &mut wire), ["", ""]);
    assert!(wire.is_empty());
}

#[test]
fn a_line_of_spaces_is_not_blank() {
    let mut codec = codec(Delimited::blank_line());
    let mut wire = BytesMut::from(&b"a\n \nb\n\n"[..]);
    assert_eq!(codec.decode(&mut wire).unwrap().as_deref(), Some("a\n \nb"));
}

#[test]
fn two_answers_in_one_buffer_are_taken_one_at_a_time() {
    let mut codec = codec(Delimited::blank_line());
    let mut wire = BytesMut::from(&b"one\n\ntwo\nlines\n\nthr"[..]);
    assert_eq!(codec.decode(&mut wire).unwrap().as_deref(), Some("one"));
    assert_eq!(&wire[..], b"two\nlines\n\nthr");
    assert_eq!(
        codec.decode(&mut wire).unwrap().as_deref(),
        Some("two\nlines")
    );
    assert_eq!(&wire[..], b"thr");
    assert_eq!(codec.decode(&mut wire).unwrap(), None);
    assert_eq!(&wire[..], b"thr");
}

#[test]
fn carriage_returns_before_newlines_are_dropped_and_others_kept() {
    let mut codec = codec(Delimited::blank_line());
    let mut wire = BytesMut::from(&b"a\r\nb\rc\r\n\r\n"[..]);
    assert_eq!(codec.decode(&mut wire).unwrap().as_deref(), Some("a\nb\rc"));
    let mut codec = self::codec(Delimited::line("END"));
    let mut wire = BytesMut::from(&b"a\r\nb\r\nEND\r\n"[..]);
    assert_eq!(codec.decode(&mut wire).unwrap().as_deref(), Some("a\nb"));
    let mut codec = self::codec(Delimited::prompt("> "));
    let mut wire = BytesMut::from(&b"a\r\nb\r\n> "[..]);
    assert_eq!(codec.decode(&mut wire).unwrap().as_deref(), Some("a\nb"));
}

#[test]
fn only_a_line_equal_to_the_marker_ends_an_answer() {
    let mut codec = codec(Delimited::line("END"));
    let mut wire = BytesMut::from(&b"THE END\nEND is near\nENDING\n END\nEND \nEND\nEND\n"[..]);
    assert_eq!(
        codec.decode(&mut wire).unwrap().as_deref(),
        Some("THE END\nEND is near\nENDING\n END\nEND ")
    );
    // A marker line alone is an empty answer.
    assert_eq!(codec.decode(&mut wire).unwrap().as_deref(), Some(""));
    assert!(wire.is_empty());
}

#[test]
fn a_marker_line_counts_only_once_its_newline_arrives() {
    let mut codec = codec(Delimited::line("."));
    let mut wire = BytesMut::from(&b"text\n."[..]);
    // The line may yet turn out to be "..." or ".sig".
    assert_eq!(codec.decode(&mut wire).unwrap(), None);
    wire.extend_from_slice(b"..\n.\n");
    assert_eq!(
        codec.decode(&mut wire).unwrap().as_deref(),
        Some("text\n...")
    );
}

#[test]
fn a_marker_with_a_newline_never_matches() {
    let mut codec = codec(Delimited::line("a\nb").with_max_length(64));
    let mut wire = BytesMut::from(&b"a\nb\n"[..]);
    assert_eq!(codec.decode(&mut wire).unwrap(), None);
}

#[test]
fn a_prompt_at_the_start_of_the_output_is_an_empty_answer() {
    let mut codec = codec(Delimited::prompt("> "));
    let mut wire = BytesMut::from(&b">"[..]);
    assert_eq!(codec.decode(&mut wire).unwrap(), None);
    wire.extend_from_slice(b" ");
    assert_eq!(codec.decode(&mut wire).unwrap().as_deref(), Some(""));
    assert!(wire.is_empty());
}

#[test]
fn a_prompt_after_a_newline_ends_the_answer_before_it() {
    let mut codec = codec(Delimited::prompt("> "));
    let mut wire = BytesMut::from(&b"4\n> 5\nsix\n> "[..]);
    assert_eq!(codec.decode(&mut wire).unwrap().as_deref(), Some("4"));
    assert_eq!(&wire[..], b"5\nsix\n> ");
    assert_eq!(codec.decode(&mut wire).unwrap().as_deref(), Some("5\nsix"));
    assert!(wire.is_empty());
}

#[test]
fn the_prompt_text_within_a_line_does_not_end_the_answer() {
    let mut codec = codec(Delimited::prompt("> "));
    let mut wire = BytesMut::from(&b"if x > 0\n>> not yet\n>"[..]);
    assert_eq!(codec.decode(&mut wire).unwrap(), None);
    wire.extend_from_slice(b"x\n> ");
    assert_eq!(
        codec.decode(&mut wire).unwrap().as_deref(),
        Some("if x > 0\n>> not yet\n>x")
    );
}

#[test]
fn an_empty_prompt_never_matches() {
    let mut codec = codec(Delimited::prompt("").with_max_length(64));
    let mut wire = BytesMut::new();
    assert_eq!(codec.decode(&mut wire).unwrap(), None);
    wire.extend_from_slice(b"x\n");
    assert_eq!(codec.decode(&mut wire).unwrap(), None);
}

#[test]
fn answers_arriving_a_byte_at_a_time_are_decoded_once_whole() {
    let cases = [
        (Delimited::blank_line(), &b"a\r\nbc\n\n\nd\n\n"[..]),
        (
            Delimited::line("END"),
            &b"a\r\nEN\nENDS\nEND\r\nEND\nd\nEND\n"[..],
        ),
        (
            Delimited::prompt(">>> "),
            &b"a\r\n>> \n>>>\n>>> >>> d\n>>> "[..],
        ),
    ];
    for (delimited, output) in cases {
        let expected = [String::from("a\nbc"), String::new(), String::from("d")];
        let expected = match &delimited.delimiter {
            Delimiter::BlankLine => expected.to_vec(),
            Delimiter::Line(_) => vec!["a\nEN\nENDS".into(), String::new(), "d".into()],
            Delimiter::Prompt(_) => vec!["a\n>> \n>>>".into(), String::new(), "d".into()],
        };
        let mut codec = codec(delimited);
        let mut wire = BytesMut::new();
        let mut got = Vec::new();
        for &byte in output {
            wire.extend_from_slice(&[byte]);
            got.extend(answers(&mut codec, &mut wire));
        }
        assert_eq!(got, expected);
        assert!(wire.is_empty());
    }
}

#[test]
fn every_split_of_the_output_gives_the_same_answers() {
    let output = b"one\r\ntwo\n\n\nthree\n\n";
    for split in 0..=output.len() {
        let mut codec = codec(Delimited::blank_line());
        let mut wire = BytesMut::from(&output[..split]);
        let mut got = answers(&mut codec, &mut wire);
        wire.extend_from_slice(&output[split..]);
        got.extend(answers(&mut codec, &mut wire));
        assert_eq!(got, ["one\ntwo", "", "three"], "split at {split}");
    }
}

#[test]
fn the_search_resumes_where_it_stopped() {
    let mut codec = codec(Delimited::blank_line());
    let mut wire = BytesMut::from(&b"line one\nline tw"[..]);
    assert_eq!(codec.decode(&mut wire).unwrap(), None);
    assert_eq!((codec.line_start, codec.searched), (9, 16));
    wire.extend_from_slice(b"o\n");
    assert_eq!(codec.decode(&mut wire).unwrap(), None);
    assert_eq!((codec.line_start, codec.searched), (18, 18));
}

#[test]
fn a_shorter_buffer_than_the_one_searched_is_searched_afresh() {
    let mut codec = codec(Delimited::blank_line());
    let mut wire = BytesMut::from(&b"a long line\nand more"[..]);
    assert_eq!(codec.decode(&mut wire).unwrap(), None);
    let mut other = BytesMut::from(&b"x\n\n"[..]);
    assert_eq!(codec.decode(&mut other).unwrap().as_deref(), Some("x"));
}

#[test]
fn an_oversize_request_is_refused_and_nothing_is_written() {
    let mut codec = codec(Delimited::blank_line().with_max_length(8));
    let mut wire = BytesMut::new();
    let error = codec.encode("123456789".into(), &mut wire).unwrap_err();
    assert!(
        matches!(
            error,
            ProtocolError::FrameTooLarge {
                direction: Direction::Request,
                size: 9,
                limit: 8
            }
        ),
        "{error}"
    );
    assert!(wire.is_empty());
    codec.encode("12345678".into(), &mut wire).unwrap();
    assert_eq!(&wire[..], b"12345678\n");
}

#[test]
fn an_answer_without_a_delimiter_is_stopped_past_the_limit() {
    let mut codec = codec(Delimited::blank_line().with_max_length(8));
    let mut wire = BytesMut::new();
    let mut error = None;
    for &byte in b"0123456789\nand no blank line yet" {
        wire.extend_from_slice(&[byte]);
        if let Err(stop) = codec.decode(&mut wire) {
            error = Some(stop);
            break;
        }
    }
    let error = error.unwrap();
    assert!(
        matches!(
            error,
            ProtocolError::FrameTooLarge {
                direction: Direction::Response,
                size: 13,
                limit: 8
            }
        ),
        "{error}"
    );
    // Stopped at the limit plus the longest delimiter (`\r\n\r\n`), not later.
    assert_eq!(wire.len(), 13);
}

#[test]
fn an_answer_over_the_limit_is_refused_even_with_its_delimiter() {
    let mut codec = codec(Delimited::line("END").with_max_length(8));
    let mut wire = BytesMut::from(&b"123456789\nEND\n"[..]);
    let error = codec.decode(&mut wire).unwrap_err();
    assert!(
        matches!(
            error,
            ProtocolError::FrameTooLarge {
                direction: Direction::Response,
                size: 9,
                limit: 8
            }
        ),
        "{error}"
    );
}

#[test]
fn an_answer_at_the_limit_is_read_even_a_byte_at_a_time() {
    let cases = [
        (Delimited::blank_line(), &b"12345678\r\n\r\n"[..]),
        (Delimited::line("END"), &b"1234\r\n78\r\nEND\r\n"[..]),
        (Delimited::prompt("> "), &b"12345678\r\n> "[..]),
    ];
    for (delimited, output) in cases {
        let mut codec = codec(delimited.with_max_length(8));
        let mut wire = BytesMut::new();
        let mut got = Vec::new();
        for &byte in output {
            wire.extend_from_slice(&[byte]);
            got.extend(answers(&mut codec, &mut wire));
        }
        assert_eq!(got.len(), 1, "{got:?}");
    }
}

#[test]
fn invalid_utf8_is_a_malformed_response() {
    let mut codec = codec(Delimited::blank_line());
    let mut wire = BytesMut::from(&b"\xff\xfe\n\nnext\n\n"[..]);
    let error = codec.decode(&mut wire).unwrap_err();
    assert!(matches!(error, ProtocolError::Malformed(_)), "{error}");
    // The bad answer is gone with its delimiter; the search starts afresh.
    assert_eq!(codec.decode(&mut wire).unwrap().as_deref(), Some("next"));
}

#[test]
fn output_ending_midway_through_an_answer_is_malformed() {
    let mut codec = codec(Delimited::line("END"));
    let mut wire = BytesMut::from(&b"done\nEND\npartial answer\nEN"[..]);
    assert_eq!(
        codec.decode_eof(&mut wire).unwrap().as_deref(),
        Some("done")
    );
    let error = codec.decode_eof(&mut wire).unwrap_err();
    let ProtocolError::Malformed(message) = &error else {
        panic!("{error}");
    };
    assert!(message.contains("ended without its delimiter"), "{message}");
    assert!(message.contains("partial answer"), "{message}");
    assert!(wire.is_empty());
    assert_eq!(codec.decode_eof(&mut wire).unwrap(), None);
}

#[test]
fn the_unfinished_answer_is_quoted_only_in_part() {
    let mut codec = codec(Delimited::blank_line());
    let mut wire = BytesMut::from("é".repeat(100).as_str());
    let error = codec.decode_eof(&mut wire).unwrap_err().to_string();
    assert!(error.contains("200 bytes"), "{error}");
    assert!(error.contains(&"é".repeat(40)), "{error}");
    assert!(!error.contains(&"é".repeat(41)), "{error}");
}

#[test]
fn a_request_with_a_newline_is_refused_and_nothing_is_written() {
    let mut codec = codec(Delimited::line("END"));
    let mut wire = BytesMut::new();
    let error = codec.encode("a\nb".into(), &mut wire).unwrap_err();
    assert!(matches!(error, ProtocolError::InvalidRequest(_)), "{error}");
    assert!(wire.is_empty());
    // The marker itself is a fine request.
    codec.encode("END".into(), &mut wire).unwrap();
    assert_eq!(&wire[..], b"END\n");
}

#[test]
fn every_answer_is_a_response_without_an_id() {
    let incoming = Delimited::blank_line().classify("answer".into()).unwrap();
    assert_eq!(
        incoming,
        Incoming::Response {
            id: None,
            response: "answer".into()
        }
    );
}
