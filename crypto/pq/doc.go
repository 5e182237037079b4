// Package pq is the post-quantum hybrid mode of sealed 1:1 payloads:
// X-Wing (X25519 + ML-KEM-768, draft-connolly-cfrg-xwing-kem) as the KEM,
// HKDF-SHA256 and ChaCha20-Poly1305, in the same shape as crypto.Seal
// (AAD from the caller, typed errors, sizes checked before any work).
//
// A sealed payload stays confidential as long as either X25519 or
// ML-KEM-768 holds, so a recording made today does not open when a
// quantum computer later breaks X25519.
//
// The X-Wing key pair is derived from the node identity (KeyFor), so the
// node stores nothing new; peers learn it from a Record signed by the
// identity key (SignRecord, VerifyRecord), so it can be trusted whichever
// node delivered it.
//
// The payloads are large (1136 bytes of overhead against the classic 48),
// so the mode is meant for unconstrained links between nodes that announce
// it; the router decides where to use it. It imports crypto and nothing
// else of qpc.
package pq
