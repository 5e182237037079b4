// Package announcer sends this node's periodic signed announces and checks
// the ones it receives (the mesh issue). Until then it is a supervised
// shell that takes part in shutdown.
package announcer
