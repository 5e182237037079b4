// Package keys is the node's MLS side (docs/crypto.md): its KeyPackages
// (the current one, whose hash the announce carries, and a last-resort
// one), the groups it is in, the KeyPackages it holds for others, and the
// group inbox.
//
// The logic is Engine, plain code; the actor owns one and carries out
// what each call returns (Effects). What it keeps on disk is in a Vault,
// encrypted under a key derived from the node's identity.
//
// Group messages ride the envelope data path: each MLS message (Welcome,
// commit, application) goes to each member as a 1:1 message of payload
// type group, sealed to that member, retransmitted until its receipt. The
// router delivers them exactly once into the group inbox
// (inbox.GroupBucket) and tells this actor, which applies them in order —
// a message for an epoch this node has not reached waits for the commit
// before it — and writes a member's text into the inbox with its group id.
//
// KeyPackages travel as signed envelopes (messages/keypackage.go): a
// request goes towards the owner, and the owner or a relay that holds the
// KeyPackage in its cache answers. A KeyPackage is taken only if its MLS
// credential is its owner's: bound to the Ed25519 key whose hash is the
// owner's address, which is also the key that signed it.
//
// One committer per group: membership changes are committed by the
// group's creator, so commits never race within an epoch.
package keys
