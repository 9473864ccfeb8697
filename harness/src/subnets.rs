//! Subnets, and the streams that carry messages between them.
//!
//! Every canister lives on a subnet. A request or response between canisters on different
//! subnets goes into the stream from the sender's subnet to the receiver's and is inducted in
//! a later round: no sooner than [`XNet::latency_rounds`] after the round it was sent in, and
//! each stream inducts at most [`XNet::bytes_per_round`] bytes a round, in stream order (a
//! message larger than that goes alone when it is first in its round's slice, so nothing is
//! stuck). Messages within a subnet do not use streams.

use std::collections::{BTreeMap, VecDeque};

use candid::Principal;

use crate::messages::{Request, ResponseMessage};

/// A subnet of the embedded IC. Canisters are on subnet 0 unless placed elsewhere.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct SubnetId(pub u32);

impl SubnetId {
    /// The principal `ic0.subnet_self` returns on this subnet: 29 bytes of 0x5a, the last four
    /// xor-ed with the subnet's number.
    pub fn principal(self) -> Principal {
        let mut bytes = [0x5a; 29];
        bytes[25..].copy_from_slice(&(0x5a5a_5a5a ^ self.0).to_be_bytes());
        Principal::from_slice(&bytes)
    }
}

impl std::fmt::Display for SubnetId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "subnet {} ({})", self.0, self.principal())
    }
}

/// How messages travel between subnets.
///
/// The defaults follow dfinity/ic:
/// - `bytes_per_round` = 4 MiB: the XNet payload builder pools at most
///   `POOL_SLICE_BYTE_SIZE_MAX` = 4 MiB of any one stream for a block
///   (rs/xnet/payload_builder/src/lib.rs), and a whole block carries at most
///   `MAX_BLOCK_PAYLOAD_SIZE` = 4 MiB of ingress and XNet payload together (rs/limits/src/lib.rs,
///   shared by the sections in rs/consensus/src/consensus/payload_builder.rs). So one stream
///   inducts at most about 4 MiB a round, and that only while the receiving subnet's blocks
///   carry nothing else (an upper bound). The sending side is not the bottleneck: a subnet's
///   stream builder fills each outgoing stream up to `TARGET_STREAM_SIZE_BYTES` = 10 MiB
///   (`MAX_STREAM_MESSAGES` = 10,000; rs/config/src/message_routing.rs, used by
///   rs/messaging/src/routing/stream_builder.rs).
/// - `latency_rounds` = 2, an assumption (the IC's code sets no such number): a message sent
///   in round r enters its stream when round r's execution ends and is certified with that
///   round's state; the receiving subnet's block maker takes a slice only once it is certified
///   and pulled (rs/xnet/payload_builder), which at one block a second we take to miss the
///   receiver's next block and land in the one after, inducted in round r + 2. The response
///   travels back the same way: a call across subnets is answered 2 × 2 rounds after it was
///   made, against the same round within a subnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct XNet {
    /// Rounds between sending a message and its induction on the other subnet (at least 1).
    pub latency_rounds: u64,
    /// Bytes of messages (method name and argument of a request, reply or reject message of a
    /// response) each stream inducts per round.
    pub bytes_per_round: u64,
}

impl Default for XNet {
    fn default() -> Self {
        XNet { latency_rounds: 2, bytes_per_round: 4 << 20 }
    }
}

/// A message on its way to another subnet.
#[derive(Debug)]
pub enum XNetMessage {
    Request(Request),
    Response { caller: Principal, response: ResponseMessage },
}

struct InStream {
    sent_round: u64,
    bytes: u64,
    message: XNetMessage,
}

/// The streams between subnets, one per ordered pair.
#[derive(Default)]
pub struct Streams {
    streams: BTreeMap<(SubnetId, SubnetId), VecDeque<InStream>>,
}

impl Streams {
    /// Appends `message` of `bytes` bytes, sent in `round`, to the stream from `from` to `to`.
    pub fn push(&mut self, from: SubnetId, to: SubnetId, round: u64, bytes: u64, message: XNetMessage) {
        self.streams.entry((from, to)).or_default().push_back(InStream { sent_round: round, bytes, message });
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Takes out the messages inducted in `round`, with the subnet each reached, stream by
    /// stream, each stream's in order.
    pub fn induct(&mut self, round: u64, xnet: &XNet) -> Vec<(SubnetId, XNetMessage)> {
        let latency = xnet.latency_rounds.max(1);
        let mut inducted = Vec::new();
        for (&(_, to), stream) in self.streams.iter_mut() {
            let mut bytes = 0u64;
            let mut first = true;
            while let Some(next) = stream.front() {
                let arrived = next.sent_round.saturating_add(latency) <= round;
                if !arrived || (!first && bytes.saturating_add(next.bytes) > xnet.bytes_per_round) {
                    break;
                }
                let next = stream.pop_front().expect("peeked");
                bytes = bytes.saturating_add(next.bytes);
                first = false;
                inducted.push((to, next.message));
            }
        }
        self.streams.retain(|_, stream| !stream.is_empty());
        inducted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::Origin;

    fn request(bytes: usize) -> XNetMessage {
        let id = Principal::anonymous();
        XNetMessage::Request(Request {
            sender: id,
            receiver: id,
            method: String::new(),
            payload: vec![0; bytes],
            cycles: 0,
            origin: Origin::System,
            deadline: 0,
        })
    }

    fn sizes(messages: &[(SubnetId, XNetMessage)]) -> Vec<usize> {
        messages
            .iter()
            .map(|(_, m)| match m {
                XNetMessage::Request(r) => r.payload.len(),
                XNetMessage::Response { .. } => unreachable!("only requests here"),
            })
            .collect()
    }

    #[test]
    fn subnet_zero_keeps_the_single_subnet_principal() {
        assert_eq!(SubnetId(0).principal(), Principal::from_slice(&[0x5a; 29]));
        assert_ne!(SubnetId(1).principal(), SubnetId(0).principal());
    }

    #[test]
    fn a_stream_waits_its_latency_then_keeps_to_its_budget_in_order() {
        let xnet = XNet { latency_rounds: 2, bytes_per_round: 10 };
        let mut streams = Streams::default();
        for bytes in [4, 5, 3, 20, 1] {
            streams.push(SubnetId(0), SubnetId(1), 7, bytes as u64, request(bytes));
        }
        assert!(streams.induct(8, &xnet).is_empty(), "one round is not enough");
        assert_eq!(sizes(&streams.induct(9, &xnet)), [4, 5]);
        assert_eq!(sizes(&streams.induct(10, &xnet)), [3], "the next would pass the budget");
        assert_eq!(sizes(&streams.induct(11, &xnet)), [20], "a message over the budget goes alone");
        assert_eq!(sizes(&streams.induct(12, &xnet)), [1]);
        assert!(streams.is_empty());
    }

    #[test]
    fn each_ordered_pair_has_its_own_budget() {
        let xnet = XNet { latency_rounds: 1, bytes_per_round: 10 };
        let mut streams = Streams::default();
        streams.push(SubnetId(0), SubnetId(1), 0, 10, request(10));
        streams.push(SubnetId(1), SubnetId(0), 0, 10, request(10));
        streams.push(SubnetId(0), SubnetId(1), 0, 10, request(10));
        assert_eq!(streams.induct(1, &xnet).len(), 2);
        assert_eq!(streams.induct(2, &xnet).len(), 1);
    }
}
