// Package scenario reads the scenario files of `qpc sim`: a TOML file that
// says which nodes run, how they are linked, what they send and what
// happens to the mesh while it runs (docs/simulation.md, "Scenario
// files", lists every key).
//
// Two steps, so that a runner can re-run one file with other seeds:
//
//	s, err := scenario.Load("test/scenarios/city-lora-50.toml") // or Parse(data, name)
//	topo, err := s.Expand(s.Seed)                               // or the --seed flag
//
// Parse decodes strictly (unknown keys and wrong types are refused),
// fills in defaults and validates everything it can without randomness:
// ranges, link endpoints, selectors that must match a node. Expand makes
// the scenario concrete for a seed: the generated nodes and links of a
// [topology], every selector of traffic and churn resolved to node
// indices, churn sorted by time. Expand is deterministic: one
// math/rand/v2 PCG (seed, seedStream) drives every choice, so the same
// file and seed give an identical *Topology; it fails only when a
// generator finds no connected layout, assign entries run out of nodes or
// partition sides overlap.
//
// Every error is an *Error with the file, the 1-based line (0 when not
// known), the dotted field with indices and a message:
//
//	mesh.toml:14: link[3].to: unknown node "x9"
//
// Lines of errors found after decoding come from a scan of the document
// with go-toml's unstable parser, which maps every key path ("link[3].to",
// "topology.tcp.k", "node[1].position") to its line; a missing key takes
// the line of its table ("link[3]").
//
// Values with units (Duration, Rate, Bandwidth) keep their text when
// decoded and are parsed by the validation pass, so a bad one is reported
// with its line and field like every other mistake.
//
// Limits: files over MaxFileSize (1 MiB) are refused before parsing, and
// scenarios with more than MaxNodes (100000) nodes. FuzzParse checks that
// no input panics.
package scenario
