// Package mls is qpc's small wrapper around the pinned MLS (RFC 9420) library
// github.com/thomas-vilte/mls-go v1.6.0. It uses the library's low-level
// packages (group, keypackages, credentials, framing), not its mls.Client:
// the Client makes a random signature key per process and keeps pending
// KeyPackages only in memory, which a node that restarts cannot use.
//
// # Suite
//
// One cipher suite only: MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
// (Suite). Group ids are 16 bytes.
//
// # Credentials are mesh addresses
//
// The MLS signature key of a node is its Ed25519 identity key (the key its
// signed announce carries), and its credential is a BasicCredential whose
// identity is its 16-byte address, crypto.AddressOf(public key). Every
// credential this package admits must satisfy identity == AddressOf(signature
// key), else ErrCredential:
//
//   - ParseKeyPackage checks it for every KeyPackage before Add can use it;
//   - Join checks every leaf of the ratchet tree a Welcome brings;
//   - Handle checks every KeyPackage a received commit adds, and after the
//     commit is applied checks every leaf again and that no remaining leaf
//     changed its address (an UpdatePath may replace a member's LeafNode but
//     not move it to another identity); a failing commit is rolled back;
//   - Load checks the stored tree, and that our own leaf holds our key.
//
// So a member's MLS identity is exactly its mesh address, and the key that
// signs its MLS messages is the key its announce is signed with. mls-go has a
// group.WithCredentialValidator option, but v1.6.0 stores it and never calls
// it; this package installs it anyway and makes the checks itself.
//
// # Messages
//
// Commits are sent as PrivateMessages, encrypted under the current epoch's
// handshake keys: relays see only group id, epoch and content type. A member
// removed by a commit can still decrypt it and check its signature; Handle
// then reports Received.Removed and does not apply it (the removed member has
// no path secret for the new epoch), and the Group refuses further use.
// Application messages are PrivateMessages too, signed with the identity key
// and then encrypted. Handle takes only PrivateMessages; Peek also reads
// PublicMessages and Welcomes, to route and order without keys.
//
// mls-go keeps per-generation replay protection: the same application
// message handled twice gives ErrReplay. It keeps the keys of the last five
// epochs in memory (not in the marshalled state), so late application
// messages of those epochs still decrypt; older ones, and any after a Load,
// give ErrWrongEpoch.
//
// # Limits and guards
//
// Every input is checked against its Max*Size before it is decoded, and
// every decoder has a fuzz target. mls-go's tree decoder allocates from a
// declared leaf count before reading; Join therefore opens the Welcome's
// GroupInfo itself first and refuses a ratchet_tree extension that would
// reach that decoder (anyone holding one of our public KeyPackages can send
// such a Welcome, and the tree is parsed before any signature is checked),
// and Load checks the stored tree's leaf count against its length.
// Decoder panics inside the library are recovered as ErrMalformed.
//
// # What is persisted
//
// Group.Marshal is the library's state (JSON: ratchet tree, group context,
// epoch secrets, the secret tree with its per-sender generation counters, our
// leaf and path HPKE private keys) plus a removed flag. The secret-tree
// counters make it nonce-safe only if the caller stores the state after every
// Encrypt, Handle, Add, Remove and SelfUpdate before the output leaves the
// node. OwnKeyPackage.MarshalBinary holds a KeyPackage with its init and leaf
// HPKE private keys. Both contain secrets; the caller encrypts them at rest.
// The identity key is stored by the caller and passed to Create, Join, Load.
//
// # One committer
//
// Membership changes (Add, Remove) are committed by the group's creator
// only; that is a rule of the callers, not checked here. SelfUpdate may be
// called by any member, but two commits made in the same epoch fork the
// group: each member follows whichever it handles first and the other gives
// ErrWrongEpoch, and the two halves can no longer read each other (their
// application messages give ErrDecrypt: same epoch number, other keys). Callers
// must therefore serialise commits (the creator commits, others ask it to),
// and handle commits of one group in epoch order (Peek gives the epoch).
//
// # Vectors
//
// TestInteropVectors runs the official mlswg test vectors shipped in the
// mls-go module through this package (RefHash and KeyPackageRef, Peek over
// PrivateMessages, PublicMessages and Welcomes, the MLS-Exporter). The
// library's own vector tests run with
//
//	go test -count=1 -run 'Vectors|Interop' github.com/thomas-vilte/mls-go/...
//
// (about half a minute, mostly compiling; -run Interop alone skips most of
// them, whose names end in Vectors).
package mls
