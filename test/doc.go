// Package test holds qpc's multi-node and end-to-end tests: real `qpc`
// processes on loopback, network namespaces and containers where the
// machine has them. Tests here build the binary once (see TestMain).
package test
