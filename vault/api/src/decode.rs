//! Candid decoding within bounds, for bytes from anyone: an endpoint's arguments, an app's or
//! a vault's replies. A few crafted bytes (a deep or wide value, a long run of skipped fields)
//! must cost bounded work and end in an error, never in seconds of instructions.
//!
//! The quota is in candid's units (`DecoderConfig::set_decoding_quota`): about one per byte of
//! a blob or text, one or more per value for everything else. The largest argument or app reply
//! of the protocol is a chunk of 2 MiB, about 2.1 M units; [`DECODING_QUOTA`] leaves room for
//! that and refuses a value that costs far more than its bytes (a billion empty values in a few
//! bytes). A refused decode has cost at most the quota: about 10 M small steps.

use candid::de::DecoderConfig;
use candid::utils::ArgumentDecoder;
use candid::CandidType;
use serde::de::DeserializeOwned;

/// Decoding work one argument or app reply may cost.
pub const DECODING_QUOTA: usize = 10_000_000;

/// A configuration that allows `decoding_quota` units of work, and a hundredth of them for
/// values the decoder skips (fields a newer sender adds; skipping is also charged 50 times
/// over against the decoding quota). Errors name the problem without echoing the bytes.
pub fn config(decoding_quota: usize) -> DecoderConfig {
    let mut config = DecoderConfig::new();
    config.set_decoding_quota(decoding_quota).set_skipping_quota(decoding_quota / 100).set_full_error_message(false);
    config
}

/// One value, within [`DECODING_QUOTA`].
pub fn one<T: CandidType + DeserializeOwned>(bytes: &[u8]) -> candid::Result<T> {
    candid::utils::decode_one_with_config(bytes, &config(DECODING_QUOTA))
}

/// A tuple of arguments, within [`DECODING_QUOTA`].
pub fn args<'a, Tuple: ArgumentDecoder<'a>>(bytes: &'a [u8]) -> candid::Result<Tuple> {
    candid::utils::decode_args_with_config(bytes, &config(DECODING_QUOTA))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_two_mib_blob_decodes() {
        let blob = serde_bytes::ByteBuf::from(vec![7u8; 2 * 1024 * 1024]);
        let bytes = candid::encode_one(&blob).unwrap();
        assert_eq!(one::<serde_bytes::ByteBuf>(&bytes).unwrap(), blob);
    }

    #[test]
    fn a_vector_of_many_empty_values_is_refused_within_the_quota() {
        // `vec null` of a billion elements: a few bytes that would decode for seconds.
        let mut bytes = b"DIDL\x01\x6d\x7f\x01\x00".to_vec();
        bytes.extend_from_slice(&[0x80, 0x94, 0xeb, 0xdc, 0x03]);
        // Without the quota this decodes, after a billion steps.
        assert!(one::<Vec<()>>(&bytes).is_err());
    }

    #[test]
    fn skipping_a_huge_unknown_field_is_refused() {
        // A record with one field the receiver does not know, holding `vec null` of a billion.
        let mut bytes = b"DIDL\x02\x6c\x01\x00\x01\x6d\x7f\x01\x00".to_vec();
        bytes.extend_from_slice(&[0x80, 0x94, 0xeb, 0xdc, 0x03]);
        #[derive(candid::CandidType, serde::Deserialize, Debug)]
        struct Empty {}
        assert!(one::<Empty>(&bytes).is_err());
    }
}
