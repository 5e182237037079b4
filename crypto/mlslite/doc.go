// Package mlslite is MLS-Lite: the compact group encryption qpc uses over
// constrained links (LoRa), and its wire frame (type 0x8, version 0).
//
// A full MLS group (RFC 9420, crypto/mls) agrees on an epoch; MLS-Lite
// takes one secret per (group, epoch) from that group's exporter
// (DeriveEpoch) and never sees the raw epoch secret. From it every member
// derives every sender's AES-128-GCM key and base nonce, so a message
// costs 16 bytes of tag and no handshake: a 32-byte text is a 95-byte
// frame, or 161 bytes with the sender's Ed25519 signature (Sizes).
//
// Nonces never repeat: a nonce is the sender's base nonce XOR a 32-bit
// counter that the sender takes from a Counter, which reserves counters
// ahead in blocks and asks for the reservation to be made durable before
// it is used, so a restart never hands out a counter twice.
//
// The frame is routed unicast, like the compact envelope: a relay reads it
// with Decode (no keys needed), raises its hop count with Forward, and
// deduplicates on Frame.ID. Only members of the group can open it
// (Epoch.Open), which checks size, encoding, group, epoch, destination,
// signature policy, AEAD and the replay window (Windows), in this order.
//
// What it protects and what it does not (unsigned frames can be forged by
// any member as any other member) is in docs/crypto.md, "MLS-Lite".
package mlslite
