//! Fuzzes what citizens sign: the canonical postcard encodings behind
//! `signing::citizen_op_message` and `signing::registration_message`, and `signing::verify`.
//!
//! The first byte picks the message (even: a citizen operation, odd: a registration). The
//! rest is the signed bytes after their domain string, which the harness puts in front
//! (both messages are postcard tuples led by that string); what follows the decoded value
//! is a public key (its first 32 bytes) and a signature (the remainder).
//!
//! Properties: a decoded value re-encodes, through the node's own function, to bytes that
//! decode to an equal value, and to the very input bytes when the input was canonical
//! (postcard also accepts overlong integers, so it need not be); a signature by a known key
//! verifies for exactly that message; an arbitrary key and signature never verify, and
//! verification refuses without panicking even for keys that are not curve points.

use std::sync::LazyLock;

use roamhub_index::signing::{self, PublicKey};
use roamhub_index::{CitizenId, CitizenOp, CityId, Identifier};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::federation::{self, KNOWN_SECRETS};

/// A citizen operation as signed, after the domain: (citizen, sequence, operation).
pub type OpBody = (CitizenId, u64, CitizenOp);
/// A registration as signed, after the domain: (home city, identifiers, first key).
pub type RegistrationBody = (CityId, Vec<Identifier>, PublicKey);

/// The encoded domain strings, taken from the node's own messages so that they cannot
/// drift from the ones it signs with.
static OP_DOMAIN: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let message = signing::citizen_op_message(&federation::citizen_id(), 0, &CitizenOp::Erase);
    domain_prefix(&message)
});
static REGISTRATION_DOMAIN: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let key = signing::public_key_of(&KNOWN_SECRETS[0]);
    let message = signing::registration_message(&federation::city("nl-gouda"), &[], &key);
    domain_prefix(&message)
});

fn domain_prefix(message: &[u8]) -> Vec<u8> {
    let (_, rest) = postcard::take_from_bytes::<String>(message).expect("led by a domain");
    message[..message.len() - rest.len()].to_vec()
}

pub fn check(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else { return };
    match selector % 2 {
        0 => check_message::<OpBody>(&OP_DOMAIN, body, |(citizen_id, sequence, op)| {
            signing::citizen_op_message(citizen_id, *sequence, op)
        }),
        _ => check_message::<RegistrationBody>(&REGISTRATION_DOMAIN, body, |(city, ids, key)| {
            signing::registration_message(city, ids, key)
        }),
    }
}

/// Decodes one message body, checks its encoding, then checks signatures over it.
fn check_message<T>(domain: &[u8], body: &[u8], message_of: fn(&T) -> Vec<u8>)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let Ok((value, rest)) = postcard::take_from_bytes::<T>(body) else { return };
    let input = [domain, &body[..body.len() - rest.len()]].concat();

    let message = message_of(&value);
    let (again, tail) = postcard::take_from_bytes::<T>(&message[domain.len()..])
        .expect("the node's message decodes");
    assert!(tail.is_empty(), "the signed message has trailing bytes");
    assert_eq!(again, value, "the signed message decodes to another value");
    let canonical = postcard::to_stdvec(&value).expect("encodes");
    if input[domain.len()..] == canonical[..] {
        assert_eq!(message, input, "canonical input, yet other signed bytes");
    }

    check_signatures(&message, rest);
}

/// A known key verifies its own signature and nothing else; arbitrary ones never verify.
fn check_signatures(message: &[u8], rest: &[u8]) {
    let known = signing::public_key_of(&KNOWN_SECRETS[0]);
    let signature = signing::sign(&KNOWN_SECRETS[0], message);
    assert!(signing::verify(&known, message, &signature).is_ok(), "a true signature failed");
    let altered = [message, &[0]].concat();
    assert!(signing::verify(&known, &altered, &signature).is_err(), "verified other bytes");

    let (key_bytes, forged) = rest.split_at(rest.len().min(32));
    let mut padded = [0u8; 32];
    padded[..key_bytes.len()].copy_from_slice(key_bytes);
    // A key from a Raft entry is deserialized without the curve check `parse` makes.
    let key: PublicKey = postcard::from_bytes(&padded).expect("any 32 bytes are a key");
    assert!(signing::verify(&key, message, forged).is_err(), "an arbitrary signature verified");
    let _ = PublicKey::parse("public_key", key_bytes);
}
