//! Frontend message framing, checked before pgwire decodes a byte of it.
//!
//! pgwire 0.41's decoders trust the lengths and counts inside a message: a password
//! message shorter than its own length field underflows (`full_len - 4`), and a
//! SASLInitialResponse, Parse, Bind or Execute that declares more than it carries
//! reads past its end with `bytes`' panicking getters (`get_u16`, `get_i32`,
//! `split_to`). They also decode from the connection's whole read buffer, so a
//! message that lies about its contents would eat the next one. Each panic ends the
//! connection task with no reply to the client.
//!
//! So ktable reads the socket itself: [`next_frame`] cuts exactly one message off
//! the buffer, checks its length against the limit pgwire applies to its type and
//! its body against the message's layout, and only then is the frame handed to
//! pgwire's codec, alone. A message that fails is a [`Violation`], answered with
//! FATAL 08P01 (protocol_violation) and a close, as PostgreSQL does.
//!
//! The upstream fix that would let this go: decode each message from a buffer
//! bounded by its length field and replace the panicking getters with checked reads
//! (`try_get_*`) returning `PgWireError`; then a decode error is an error reply.

use bytes::{Buf, BytesMut};
use datafusion_postgres::pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use datafusion_postgres::pgwire::messages::extendedquery::{
    Bind, Close, Describe, Execute, Flush, Parse, Sync,
};
use datafusion_postgres::pgwire::messages::simplequery::Query;
use datafusion_postgres::pgwire::messages::startup::PasswordMessageFamily;
use datafusion_postgres::pgwire::messages::terminate::Terminate;
use datafusion_postgres::pgwire::messages::Message;

/// The longest startup packet (PostgreSQL's and pgwire's `MAX_STARTUP_PACKET_LENGTH`).
const MAX_STARTUP_LENGTH: usize = 10_000;

/// Where the connection is, which decides what may arrive next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Before the startup packet: untagged frames (startup or cancel request).
    Startup,
    /// SCRAM has been offered: the next message is a SASLInitialResponse.
    SaslInitial,
    /// Inside the SASL exchange: SASLResponse messages.
    Sasl,
    /// Logged in.
    Ready,
}

/// Why a message was refused, in PostgreSQL's words where it has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation(pub(crate) String);

impl Violation {
    fn new(message: impl Into<String>) -> Self {
        Violation(message.into())
    }
}

/// Cuts the next whole message off `buffer` once it has arrived and passes its
/// checks; `Ok(None)` while more bytes are needed. Lengths are checked before the
/// body is waited for, so the buffer never grows past one message of the longest
/// length its type allows.
pub(crate) fn next_frame(
    buffer: &mut BytesMut,
    phase: Phase,
) -> Result<Option<BytesMut>, Violation> {
    if phase == Phase::Startup {
        let Some(length) = length_at(buffer, 0) else {
            return Ok(None);
        };
        if !(8..=MAX_STARTUP_LENGTH as i64).contains(&length) {
            return Err(Violation::new("invalid length of startup packet"));
        }
        return Ok(take(buffer, length as usize));
    }
    let Some(&tag) = buffer.first() else {
        return Ok(None);
    };
    if phase != Phase::Ready && tag != b'p' && tag != b'X' {
        return Err(Violation::new(format!(
            "expected password response, got message type {tag}"
        )));
    }
    let Some(max) = max_length(tag) else {
        return Err(Violation::new(format!(
            "invalid frontend message type {tag}"
        )));
    };
    let Some(length) = length_at(buffer, 1) else {
        return Ok(None);
    };
    if !(4..=max as i64).contains(&length) {
        return Err(Violation::new(format!(
            "invalid message length {length} for message type {tag}"
        )));
    }
    let Some(frame) = take(buffer, 1 + length as usize) else {
        return Ok(None);
    };
    check_body(tag, &frame[5..], phase)?;
    Ok(Some(frame))
}

/// The big-endian i32 length at `at`, once its four bytes are there.
fn length_at(buffer: &BytesMut, at: usize) -> Option<i64> {
    let bytes = buffer.get(at..at + 4)?;
    Some(i64::from(i32::from_be_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3],
    ])))
}

fn take(buffer: &mut BytesMut, length: usize) -> Option<BytesMut> {
    (buffer.len() >= length).then(|| buffer.split_to(length))
}

/// The longest message of type `tag` pgwire decodes (its own limits, so the two
/// agree), or `None` for a type no frontend sends.
fn max_length(tag: u8) -> Option<usize> {
    Some(match tag {
        b'p' => PasswordMessageFamily::max_message_length(),
        b'Q' => Query::max_message_length(),
        b'P' => Parse::max_message_length(),
        b'B' => Bind::max_message_length(),
        b'E' => Execute::max_message_length(),
        b'D' => Describe::max_message_length(),
        b'C' => Close::max_message_length(),
        b'H' => Flush::max_message_length(),
        b'S' => Sync::max_message_length(),
        b'X' => Terminate::max_message_length(),
        b'd' => CopyData::max_message_length(),
        b'c' => CopyDone::max_message_length(),
        b'f' => CopyFail::max_message_length(),
        _ => return None,
    })
}

/// Checks the layout of the bodies pgwire reads with panicking getters; the others
/// (Query, CopyData, Sync...) it reads safely from a frame of the right length.
fn check_body(tag: u8, body: &[u8], phase: Phase) -> Result<(), Violation> {
    let mut body = Body(body);
    match (tag, phase) {
        (b'p', Phase::SaslInitial) => {
            body.cstring()?;
            let length = body.i32()?;
            if length != -1 && usize::try_from(length).ok() != Some(body.0.len()) {
                return Err(Violation::new("malformed SASLInitialResponse message"));
            }
            Ok(())
        }
        (b'P', _) => {
            body.cstring()?;
            body.cstring()?;
            let types = body.u16()?;
            body.skip(4 * usize::from(types))?;
            body.end()
        }
        (b'B', _) => {
            body.cstring()?;
            body.cstring()?;
            let formats = body.u16()?;
            body.skip(2 * usize::from(formats))?;
            for _ in 0..body.u16()? {
                match body.i32()? {
                    -1 => {}
                    length => body.skip(
                        usize::try_from(length)
                            .map_err(|_| Violation::new("invalid parameter length"))?,
                    )?,
                }
            }
            let formats = body.u16()?;
            body.skip(2 * usize::from(formats))?;
            body.end()
        }
        (b'E', _) => {
            body.cstring()?;
            body.i32()?;
            body.end()
        }
        (b'D' | b'C', _) => {
            body.skip(1)?;
            body.cstring()?;
            body.end()
        }
        _ => Ok(()),
    }
}

/// A cursor over a message body whose reads fail instead of panicking.
struct Body<'a>(&'a [u8]);

impl Body<'_> {
    fn skip(&mut self, n: usize) -> Result<(), Violation> {
        if n > self.0.len() {
            return Err(Violation::new("insufficient data left in message"));
        }
        self.0.advance(n);
        Ok(())
    }

    fn cstring(&mut self) -> Result<(), Violation> {
        match self.0.iter().position(|b| *b == 0) {
            Some(end) => self.skip(end + 1),
            None => Err(Violation::new("invalid string in message")),
        }
    }

    fn u16(&mut self) -> Result<u16, Violation> {
        let bytes = self.0.get(..2).ok_or_else(short)?;
        let value = u16::from_be_bytes([bytes[0], bytes[1]]);
        self.skip(2)?;
        Ok(value)
    }

    fn i32(&mut self) -> Result<i32, Violation> {
        let bytes = self.0.get(..4).ok_or_else(short)?;
        let value = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        self.skip(4)?;
        Ok(value)
    }

    fn end(&self) -> Result<(), Violation> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Violation::new("invalid message format"))
        }
    }
}

fn short() -> Violation {
    Violation::new("insufficient data left in message")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(tag: u8, body: &[u8]) -> BytesMut {
        let mut bytes = BytesMut::new();
        bytes.extend_from_slice(&[tag]);
        bytes.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        bytes.extend_from_slice(body);
        bytes
    }

    #[test]
    fn whole_messages_are_cut_one_at_a_time() {
        let mut buffer = message(b'Q', b"SELECT 1\0");
        buffer.extend_from_slice(&message(b'S', b""));
        let first = next_frame(&mut buffer, Phase::Ready).unwrap().unwrap();
        assert_eq!(first, message(b'Q', b"SELECT 1\0"));
        let second = next_frame(&mut buffer, Phase::Ready).unwrap().unwrap();
        assert_eq!(second, message(b'S', b""));
        assert_eq!(next_frame(&mut buffer, Phase::Ready), Ok(None));
    }

    #[test]
    fn a_partial_message_waits_for_the_rest() {
        let whole = message(b'Q', b"SELECT 1\0");
        for cut in 0..whole.len() {
            let mut buffer = BytesMut::from(&whole[..cut]);
            assert_eq!(next_frame(&mut buffer, Phase::Ready), Ok(None), "{cut}");
        }
    }

    #[test]
    fn lengths_are_refused_before_the_body_arrives() {
        for length in [0i32, 3, -1, i32::MAX] {
            let mut buffer = BytesMut::from(&b"Q"[..]);
            buffer.extend_from_slice(&length.to_be_bytes());
            assert!(next_frame(&mut buffer, Phase::Ready).is_err(), "{length}");
        }
        let mut startup = BytesMut::from(&4i32.to_be_bytes()[..]);
        assert!(next_frame(&mut startup, Phase::Startup).is_err());
        let mut startup = BytesMut::from(&1_000_000i32.to_be_bytes()[..]);
        assert!(next_frame(&mut startup, Phase::Startup).is_err());
    }

    #[test]
    fn bodies_that_claim_more_than_they_carry_are_refused() {
        let mut parse = b"\0SELECT 1\0".to_vec();
        parse.extend_from_slice(&u16::MAX.to_be_bytes());
        let mut bind = b"\0\0\0\0\0\x01".to_vec();
        bind.extend_from_slice(&1000i32.to_be_bytes());
        bind.extend_from_slice(b"ab\0\0");
        let mut sasl = b"SCRAM-SHA-256\0".to_vec();
        sasl.extend_from_slice(&100i32.to_be_bytes());
        sasl.extend_from_slice(b"n,,");
        for (phase, tag, body) in [
            (Phase::Ready, b'P', parse),
            (Phase::Ready, b'B', bind),
            (Phase::Ready, b'E', b"\0".to_vec()),
            (Phase::Ready, b'D', b"".to_vec()),
            (Phase::SaslInitial, b'p', sasl),
            (Phase::SaslInitial, b'p', b"SCRAM-SHA-256".to_vec()),
            (Phase::SaslInitial, b'p', b"s3cret\0".to_vec()),
            (Phase::Sasl, b'Q', b"SELECT 1\0".to_vec()),
        ] {
            let mut buffer = message(tag, &body);
            assert!(
                next_frame(&mut buffer, phase).is_err(),
                "{phase:?} {}: {body:?}",
                tag as char
            );
        }
    }

    #[test]
    fn what_clients_send_passes() {
        let mut sasl = b"SCRAM-SHA-256\0".to_vec();
        sasl.extend_from_slice(&3i32.to_be_bytes());
        sasl.extend_from_slice(b"n,,");
        let mut parse = b"s1\0SELECT $1\0\0\x01".to_vec();
        parse.extend_from_slice(&25u32.to_be_bytes());
        let mut bind = b"\0s1\0\0\x01\0\0\0\x02".to_vec();
        bind.extend_from_slice(&2i32.to_be_bytes());
        bind.extend_from_slice(b"u1");
        bind.extend_from_slice(&(-1i32).to_be_bytes());
        bind.extend_from_slice(b"\0\x01\0\x01");
        for (phase, tag, body) in [
            (Phase::SaslInitial, b'p', sasl),
            (Phase::Sasl, b'p', b"c=biws,r=abc,p=xyz".to_vec()),
            (Phase::Ready, b'P', parse),
            (Phase::Ready, b'B', bind),
            (Phase::Ready, b'E', b"\0\0\0\0\0".to_vec()),
            (Phase::Ready, b'D', b"S\0".to_vec()),
            (Phase::Ready, b'X', Vec::new()),
        ] {
            let mut buffer = message(tag, &body);
            assert!(
                matches!(next_frame(&mut buffer, phase), Ok(Some(_))),
                "{phase:?} {}",
                tag as char
            );
        }
    }
}
